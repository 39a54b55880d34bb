//! The real `appeals` binary as a child process, the one way the suite runs it:
//! built once per test run, run once for a command of its command line
//! ([`run_command`]), or started with `appeals serve` on a port of its own
//! ([`ServerProcess`]), killed with SIGKILL and started again on the same port and
//! database, as an operator's supervisor would. Only the flags and variables
//! given here configure it: the `APPEALS_*` and `OTEL_*` variables of the test
//! run are not passed on.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::test_log_is_on;

/// The `appeals` binary of this workspace, rebuilt once per test run so that it
/// is never stale. Cargo builds a package's binaries only for that package's own
/// tests, and the binary belongs to `appeals-api`, not to this package.
pub fn appeals_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test_executable = std::env::current_exe().expect("the test's own path");
        // Tests run from `target/<profile>/deps/`; binaries live in `target/<profile>/`.
        let profile_dir = test_executable.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "appeals-api",
            "--bin",
            "appeals",
        ]);
        // Cargo gives this test the variables of its own package (`CARGO_PKG_*`
        // and the like). Some build scripts (ring's) track those, so passing them
        // on would make this build, and the next ordinary one, rebuild half the tree.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_this_test = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"].contains(&name.as_ref());
            if set_for_this_test {
                build.env_remove(name.as_ref());
            }
        }
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo should run");
        assert!(status.success(), "`cargo build -p appeals-api --bin appeals` failed");
        let binary = profile_dir.join(format!("appeals{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.is_file(), "no binary at {}", binary.display());
        binary
    })
}

/// Runs `appeals ARGS --database-url URL` to its end and returns its exit status
/// and what it printed.
pub fn run_command(database_url: &str, args: &[&str]) -> Output {
    run_command_with_env(database_url, args, &[])
}

/// As [`run_command`], with the variables `env` set.
pub fn run_command_with_env(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = appeals_command();
    command.args(args).args(["--database-url", database_url]).envs(env.iter().copied());
    command.output().expect("the binary should start")
}

/// Runs `appeals ARGS --database-url URL` (a command that may run forever,
/// such as `serve`) until it exits or `within` passes; `None` if it was still
/// running then (it is killed).
pub fn run_command_within(database_url: &str, args: &[&str], within: Duration) -> Option<Output> {
    let mut child = appeals_command()
        .args(args)
        .args(["--database-url", database_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary should start");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if child.try_wait().expect("the child can be waited for").is_some() {
            return Some(child.wait_with_output().expect("the child's output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The exit status and output of a command, for an assertion's message.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port that was free a moment ago: bound here and released, for a server to
/// bind again. Another process could take it in between; on a test machine that
/// is rare enough.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// A few random bits without a dependency on `rand`: a fresh v4 UUID is 122
/// random bits from the operating system.
pub fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// A random duration in `from..=to`.
pub fn random_between(from: Duration, to: Duration) -> Duration {
    let span = to.saturating_sub(from).as_millis() as u64;
    from + Duration::from_millis(random_u64() % (span + 1))
}

/// An `appeals serve` process, killed on drop. Its standard error (the log) of
/// every start goes to one file, printed when it is dropped during a panic (its
/// test failed) or, with `TEST_LOG`, always.
pub struct ServerProcess {
    child: Option<Child>,
    client: reqwest::Client,
    port: u16,
    database_url: String,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    starts: u32,
}

impl ServerProcess {
    /// Starts `appeals serve --listen 127.0.0.1:PORT --database-url URL
    /// [extra_args]` on a free port and waits until `/healthz` answers.
    pub async fn start(database_url: &str, extra_args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(database_url, extra_args, &[]).await
    }

    /// As [`ServerProcess::start`], with the variables `env` set, in every start.
    pub async fn start_with_env(database_url: &str, extra_args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("appeals-process-{}-{port}.log", uuid::Uuid::new_v4().simple()));
        let mut server = ServerProcess {
            child: None,
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client"),
            port,
            database_url: database_url.to_owned(),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            env: env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
            log,
            starts: 0,
        };
        server.spawn_and_wait().await;
        server
    }

    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Posts a GraphQL request as `token` and returns the JSON response.
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.address()))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the server should answer");
        response.json().await.expect("a JSON answer")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address())).send().await.expect("the server should answer")
    }

    /// How many times the process has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Kills the process with SIGKILL (what `Child::kill` sends on Unix): no
    /// graceful shutdown, no chance to finish or flush anything. Waits until it is
    /// gone, so that its port and database handles are released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process if it still runs and starts it again on the same port
    /// and database, waiting until `/healthz` answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait().await;
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The most memory the running process has held (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sends SIGTERM, as an operator's supervisor would, and waits up to `within`
    /// for the process to exit. Returns how long it took, or `None` if it did not
    /// exit in time (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<Duration> {
        let mut child = self.child.take()?;
        let sent = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        while sent.elapsed() < within {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Everything the process (in all its starts) wrote to standard error.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut file| file.read_to_string(&mut text));
        text
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("a log file");
        let mut command = appeals_command();
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--database-url", &self.database_url])
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.starts += 1;
        command.spawn().expect("the binary should start")
    }

    /// Spawns the server and waits for `/healthz`. A process that exits at once
    /// is started again a few times (its port may not be released yet); one that
    /// keeps failing, or does not answer within 30 s, fails the test, and its log
    /// is printed as it is dropped.
    async fn spawn_and_wait(&mut self) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("a client");
        // The first start in a test run builds the binary, which on a fresh clone
        // takes longer than any start should: the 30 s are counted after it.
        if let Err(failed) = tokio::task::spawn_blocking(appeals_binary).await {
            std::panic::resume_unwind(failed.into_panic());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut early_exits = 0;
        let mut child = self.spawn();
        loop {
            let answered = client.get(format!("{}/healthz", self.address())).send().await;
            // An answer counts only while our own process runs: one that failed to
            // bind must not be mistaken for whatever else answers on the port.
            if let (Ok(response), Ok(None)) = (answered, child.try_wait()) {
                assert_eq!(response.status(), 200, "/healthz of the started server");
                self.child = Some(child);
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                early_exits += 1;
                assert!(early_exits < 5, "`appeals serve` exited with {status}, {early_exits} times (its log follows)");
                tokio::time::sleep(Duration::from_millis(200)).await;
                child = self.spawn();
                continue;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`appeals serve` did not answer /healthz within 30 s (its log follows)");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || test_log_is_on() {
            eprintln!(
                "---- log of `appeals serve` on port {} ({} starts) ----\n{}---- end of the log ----",
                self.port,
                self.starts,
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A command running [`appeals_binary`] without the `APPEALS_*` and `OTEL_*`
/// variables of the test run, so that only what the test gives configures it.
fn appeals_command() -> Command {
    let mut command = Command::new(appeals_binary());
    for (name, _) in std::env::vars_os() {
        let configures = ["APPEALS_", "OTEL_"].iter().any(|prefix| name.to_string_lossy().starts_with(prefix));
        if configures {
            command.env_remove(name);
        }
    }
    command
}
