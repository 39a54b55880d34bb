//! The real server under test: the `appeals` binary of this workspace, built by
//! cargo in the bench's own profile, started as a child process on the benchmark
//! database with rate limiting off, and watched through `/proc`: its peak
//! resident memory (`VmHWM`, reset before each scenario) and the CPU time it
//! spends (`utime` + `stime`). Several of them are [`crate::replicas`].

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running `appeals serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    watch: ProcessWatch,
}

/// Which database a server runs on, and with how many connections.
#[derive(Debug, Clone)]
pub struct ServerDatabase {
    pub url: String,
    /// A hot standby of `url`, for lists, dashboards and search.
    pub read_url: Option<String>,
    pub pool_size: u32,
}

/// Reads the CPU time and peak memory of one or more processes (the replicas)
/// from `/proc`.
#[derive(Debug, Clone)]
pub struct ProcessWatch {
    pids: Vec<u32>,
    clock_ticks_per_second: f64,
}

/// What the server processes have used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU time, added up over the processes.
    pub cpu_seconds: f64,
    /// The peak resident set since it was last reset: the largest process's.
    pub peak_rss_bytes: u64,
}

/// The `appeals` binary beside this one (the same cargo profile), rebuilt first
/// so that it is never stale; when cargo is not at hand, the binary as it is.
pub fn binary() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("the bench's own path")?;
    let profile_dir = own.parent().context("the bench binary has no folder")?;
    let binary = profile_dir.join(format!("appeals{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.file_name().is_some_and(|name| name == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the workspace root")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace).args(["build", "--quiet", "-p", "appeals-api", "--bin", "appeals"]);
    if release {
        build.arg("--release");
    }
    eprintln!(
        "building the server: cargo build{} -p appeals-api --bin appeals",
        if release { " --release" } else { "" }
    );
    match build.status() {
        Ok(status) if status.success() => {}
        Ok(status) => anyhow::bail!("building the server failed ({status})"),
        Err(error) if binary.is_file() => eprintln!("cannot run cargo ({error}); using {} as it is", binary.display()),
        Err(error) => return Err(error).context("cannot run cargo to build the server"),
    }
    anyhow::ensure!(binary.is_file(), "no server binary at {}", binary.display());
    Ok(binary)
}

impl Server {
    /// Starts `appeals serve` on a free port, its log going to `log`, without
    /// waiting for it: replicas are started at the same moment, then
    /// [`Server::ready`] waits for each.
    pub fn spawn(binary: &Path, database: &ServerDatabase, log: PathBuf) -> anyhow::Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let output = File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--database-url", &database.url, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--rate-limit", "0", "--database-pool-size", &database.pool_size.to_string()])
            // A thousand subscribers of one user from one address are the load.
            .args(["--max-connections-per-address", "0", "--max-sockets-per-user", "0"]);
        if let Some(read_url) = &database.read_url {
            // The standby's pool is as large as the primary's.
            command.args([
                "--database-read-url",
                read_url,
                "--database-read-pool-size",
                &database.pool_size.to_string(),
            ]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let watch = ProcessWatch { pids: vec![child.id()], clock_ticks_per_second: clock_ticks_per_second() };
        Ok(Server { child, port, log, watch })
    }

    /// Waits until `/readyz` answers.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let ready = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited at start ({status}); see {}", self.log.display());
            }
            if client.get(&ready).send().await.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not become ready; see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The SQL statements the server has sent so far, from its `/metrics`.
    pub async fn statements(&self) -> Option<u64> {
        let metrics = reqwest::get(format!("{}/metrics", self.base_url())).await.ok()?.text().await.ok()?;
        let total = metrics
            .lines()
            .filter(|line| line.starts_with("appeals_sql_statements_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn watch(&self) -> ProcessWatch {
        self.watch.clone()
    }

    /// Asks the server to stop (SIGTERM, as an operator would), and kills it if it
    /// has not stopped within a few seconds.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// Sends SIGTERM and returns at once; [`Server::stop`] then waits.
    pub fn ask_to_stop(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.ask_to_stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl ProcessWatch {
    /// Resets the peak resident set to the current one, so that the next reading
    /// is the peak of what happens in between. Returns false where the kernel
    /// does not allow it (the peak is then the process's lifetime peak).
    pub fn reset_peak_memory(&self) -> bool {
        self.pids.iter().all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }

    /// The processes of `watches` watched as one.
    pub fn joined(watches: impl IntoIterator<Item = ProcessWatch>) -> ProcessWatch {
        let mut joined = ProcessWatch { pids: Vec::new(), clock_ticks_per_second: clock_ticks_per_second() };
        for watch in watches {
            joined.pids.extend(watch.pids);
        }
        joined
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        let mut usage = Usage::default();
        for &pid in &self.pids {
            let one = self.usage_of(pid)?;
            usage.cpu_seconds += one.cpu_seconds;
            usage.peak_rss_bytes = usage.peak_rss_bytes.max(one.peak_rss_bytes);
        }
        Ok(usage)
    }

    fn usage_of(&self, pid: u32) -> anyhow::Result<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name, in parentheses, may hold spaces: count fields after it.
        let fields: Vec<&str> =
            stat.rsplit_once(')').context("a malformed /proc/PID/stat")?.1.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or_default();
        // Fields 14 and 15 of stat(5); the first field after the name is field 3.
        let cpu_seconds = (ticks(11) + ticks(12)) / self.clock_ticks_per_second;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let peak_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_default();
        Ok(Usage { cpu_seconds, peak_rss_bytes: peak_kib * 1024 })
    }
}

/// The kernel's unit for CPU times in `/proc` (`getconf CLK_TCK`), 100 on Linux.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}
