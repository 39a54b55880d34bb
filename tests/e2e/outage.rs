//! The database going away is an outage, not a catastrophe, on PostgreSQL. The
//! test runs a PostgreSQL instance of its own, on its own port, so that the
//! shared server is not disturbed; the real `appeals`
//! binary serves a steady trickle of requests while that instance is stopped
//! (`pg_ctl stop -m immediate`, as a crash of the database would) and started
//! again. While it is down, every request fails fast with `SERVICE_UNAVAILABLE` or `INTERNAL` (or 503),
//! never hangs and never reports a write that did not happen; `/readyz` says
//! 503 and `/healthz` 200. Once it is back, the service recovers by itself,
//! without a restart, and nothing acknowledged before is lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_storage::{PoolSettings, Store};
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, describe, free_port};

/// The longest a request may take while the database is away: a bound on
/// hanging (the server waits `--database-timeout 2s` for a connection), not a
/// performance target.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// How long the service may take to notice that the database is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);
/// How long the database stays away.
const OUTAGE: Duration = Duration::from_secs(6);
/// The whole test, once the binary is built.
const TIME_BOUND: Duration = Duration::from_secs(90);
/// One request of the trickle every this often.
const TRICKLE_EVERY: Duration = Duration::from_millis(50);

const SUBMIT: &str =
    "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { created appeal { id number status } } }";
const READ: &str = "query($id: ID!) { appeal(id: $id) { id number status } }";

/// A PostgreSQL instance of the test's own: a fresh data directory in a
/// temporary directory, run as the `postgres` OS user when the test runs as
/// root (initdb refuses root).
/// Dropping it stops the instance and removes the directory.
struct PostgresInstance {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PostgresInstance {
    /// The newest `/usr/lib/postgresql/*/bin` that has `initdb` and `pg_ctl`.
    fn find_binaries() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    /// Creates the cluster (trust authentication, superuser `postgres`) and
    /// starts it on a free port, listening on 127.0.0.1 only.
    fn start(bin: PathBuf) -> PostgresInstance {
        let dir = std::env::temp_dir().join(format!("appeals-outage-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("socket")).expect("a temporary directory");
        let instance = PostgresInstance { bin, dir, port: free_port() };
        if running_as_root() {
            succeed(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&instance.dir), "chown");
        }
        let data = instance.data().display().to_string();
        instance.as_postgres(
            "initdb",
            &["-D", &data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        instance.pg_ctl_start();
        instance
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections, on the same port
    /// every time.
    fn pg_ctl_start(&self) {
        let data = self.data().display().to_string();
        let log = self.dir.join("postgres.log").display().to_string();
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.join("socket").display());
        self.as_postgres("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start"]);
    }

    /// `pg_ctl stop -m immediate`: the server quits at once, without a shutdown
    /// checkpoint, and its connections break, as in a crash.
    fn pg_ctl_stop_immediately(&self) -> Output {
        let data = self.data().display().to_string();
        self.output_as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> Output {
        let output = self.output_as_postgres(tool, args);
        assert!(output.status.success(), "{tool} {args:?} failed: {}\n{}", describe(&output), self.server_log());
        output
    }

    /// Runs `tool` as the `postgres` OS user when the test runs as root (as in
    /// CI), or as the test's own user otherwise.
    fn output_as_postgres(&self, tool: &str, args: &[&str]) -> Output {
        let mut command = if running_as_root() {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            runuser
        } else {
            Command::new(self.bin.join(tool))
        };
        command
            .args(args)
            // The tools look at their working directory, which must be theirs to read.
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|error| panic!("running {tool}: {error}"))
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PostgresInstance {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop_immediately();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (`Uid:` 0 in `/proc/self/status`).
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
}

fn succeed(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(output.status.success(), "{what} failed: {}", describe(&output));
}

/// How one request of the trickle ended.
#[derive(Debug, Clone)]
struct Outcome {
    what: String,
    sent: Instant,
    took: Duration,
    result: Result<Value, Failure>,
}

#[derive(Debug, Clone)]
enum Failure {
    /// A GraphQL error: the HTTP status, its code and message.
    Coded { status: u16, code: String, message: String },
    /// An HTTP status without a GraphQL error.
    Status(u16),
    /// No answer at all (the client's own timeout included).
    NoAnswer(String),
}

/// Sends a GraphQL request and classifies its answer; the client gives up after
/// twice [`ANSWER_BOUND`], so that a hang is measured, not waited out.
async fn request(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    query: &str,
    variables: Value,
    field: &str,
) -> Result<Value, Failure> {
    let response = http
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|error| Failure::NoAnswer(error.to_string()))?;
    let status = response.status().as_u16();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) => return Err(Failure::Status(status)),
    };
    if let Some(error) = body["errors"].get(0) {
        return Err(Failure::Coded {
            status,
            code: error["extensions"]["code"].as_str().unwrap_or("(none)").to_owned(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    match &body["data"][field] {
        Value::Null => Err(Failure::Status(status)),
        payload => Ok(payload.clone()),
    }
}

/// A failure as the outage allows it: `SERVICE_UNAVAILABLE` (no connection to be
/// had) or `INTERNAL` (the connection broke mid-statement), in a 200 or a 503, or a bare
/// 503, with a plain message that shows no SQL.
fn acceptable_failure(failure: &Failure) -> Result<(), String> {
    match failure {
        Failure::Coded { status: 200 | 503, code, message } if code == "SERVICE_UNAVAILABLE" || code == "INTERNAL" => {
            let leaked = ["SELECT", "INSERT", "UPDATE", "DELETE", " FROM ", "WHERE", "sqlx", "sea_orm", "\"app_user\""]
                .into_iter()
                .find(|word| message.contains(word));
            match leaked {
                Some(word) => Err(format!("the message shows SQL or its driver ({word}): {message}")),
                None => Ok(()),
            }
        }
        Failure::Status(503) => Ok(()),
        Failure::NoAnswer(error) => Err(format!("no answer: {error}")),
        other => Err(format!("not SERVICE_UNAVAILABLE, INTERNAL nor 503: {other:?}")),
    }
}

async fn token(store: &Store, role: Role, name: &str, municipality: Option<&str>) -> String {
    let code = municipality.map(|code| MunicipalityCode::parse(code).expect("a valid code"));
    let name = PersonName::parse(name).expect("a valid name");
    let (_, token) = store.create_user(name, role, code.as_ref()).await.expect("the user should be created");
    token.expose().to_owned()
}

fn submission(external_id: &str) -> Value {
    json!({ "input": {
        "municipalityCode": "tomsk",
        "channel": "VK",
        "externalId": external_id,
        "text": format!("Не вывозят мусор, сообщение {external_id}"),
    } })
}

async fn get_status(http: &reqwest::Client, url: String) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = http.get(url).send().await.ok().map(|response| response.status().as_u16());
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_going_away_is_an_outage_not_a_catastrophe() {
    let Some(bin) = PostgresInstance::find_binaries() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "in CI, PostgreSQL's initdb and pg_ctl must be installed under /usr/lib/postgresql/*/bin"
        );
        println!("skipped: no initdb and pg_ctl under /usr/lib/postgresql/*/bin");
        return;
    };
    // Building the binary is not part of the bound.
    tokio::task::block_in_place(crate::support::process::appeals_binary);
    // Dropped with the future when the bound is reached, the guards stop the
    // server and PostgreSQL all the same.
    if tokio::time::timeout(TIME_BOUND, outage_and_recovery(bin)).await.is_err() {
        panic!("the outage test did not finish within {TIME_BOUND:?}");
    }
}

async fn outage_and_recovery(bin: PathBuf) {
    let started = Instant::now();
    let postgres = tokio::task::block_in_place(|| PostgresInstance::start(bin));
    let url = postgres.url();

    let setup = Store::open(&url, PoolSettings::default()).await.expect("the database should open");
    let intake = token(&setup, Role::Intake, "Бот приёма ВКонтакте", None).await;
    let governor = token(&setup, Role::GovernorOffice, "ЦУР Томской области", None).await;
    setup.close().await.expect("the setup store should close");

    let server = ServerProcess::start(&url, &["--database-timeout", "2s", "--rate-limit", "0"]).await;
    let address = server.address();
    let http = reqwest::Client::builder().timeout(ANSWER_BOUND * 2).build().expect("a client");
    let run = uuid::Uuid::new_v4().simple().to_string();

    // Before the outage: the service works.
    let mut before = Vec::new();
    for n in 0..5 {
        let submitted =
            request(&http, &address, &intake, SUBMIT, submission(&format!("{run}-before-{n}")), "submitAppeal").await;
        let appeal = submitted.unwrap_or_else(|failure| panic!("a submission before the outage: {failure:?}"));
        before.push(appeal["appeal"].clone());
    }
    assert_eq!(get_status(&http, format!("{address}/readyz")).await.0, Some(200), "/readyz before the outage");

    // A steady trickle of submissions and reads, each request on its own task so
    // that one that hangs does not hold the others back.
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let (http, address, outcomes, stop) = (http.clone(), address.clone(), Arc::clone(&outcomes), Arc::clone(&stop));
        let (intake, governor, run, known) = (intake.clone(), governor.clone(), run.clone(), before[0]["id"].clone());
        tokio::spawn(async move {
            let mut requests = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (http, address, outcomes) = (http.clone(), address.clone(), Arc::clone(&outcomes));
                let (intake, governor, run, known) = (intake.clone(), governor.clone(), run.clone(), known.clone());
                requests.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let (what, result) = if n % 2 == 0 {
                        let external_id = format!("{run}-trickle-{n}");
                        let result =
                            request(&http, &address, &intake, SUBMIT, submission(&external_id), "submitAppeal").await;
                        (format!("submitAppeal {external_id}"), result)
                    } else {
                        let result = request(&http, &address, &governor, READ, json!({ "id": known }), "appeal").await;
                        (format!("appeal({known})"), result)
                    };
                    outcomes.lock().unwrap().push(Outcome { what, sent, took: sent.elapsed(), result });
                }));
                tokio::time::sleep(TRICKLE_EVERY).await;
            }
            requests
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;

    // The outage.
    let stopping = Instant::now();
    let stopped = tokio::task::block_in_place(|| postgres.pg_ctl_stop_immediately());
    assert!(stopped.status.success(), "pg_ctl stop: {}", describe(&stopped));
    let down = Instant::now();
    println!("PostgreSQL on port {} stopped (immediate) in {:.1?}", postgres.port, down - stopping);

    // Probes and explicit requests while it is down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ready, took) = get_status(&http, format!("{address}/readyz")).await;
    assert_eq!(ready, Some(503), "/readyz while the database is down (answered in {took:.1?})");
    assert!(took < ANSWER_BOUND, "/readyz took {took:.1?} while the database is down");
    let (health, took) = get_status(&http, format!("{address}/healthz")).await;
    assert_eq!(health, Some(200), "/healthz while the database is down: the process is up");
    assert!(took < ANSWER_BOUND, "/healthz took {took:.1?} while the database is down");
    for n in 0..3 {
        let sent = Instant::now();
        let result =
            request(&http, &address, &intake, SUBMIT, submission(&format!("{run}-down-{n}")), "submitAppeal").await;
        let took = sent.elapsed();
        assert!(took < ANSWER_BOUND, "a submission while the database is down took {took:.1?}: {result:?}");
        match result {
            Ok(payload) => panic!("a submission succeeded while the database is down: {payload}"),
            Err(failure) => acceptable_failure(&failure)
                .unwrap_or_else(|problem| panic!("a submission while the database is down: {problem}")),
        }
    }
    let remaining = OUTAGE.saturating_sub(down.elapsed());
    tokio::time::sleep(remaining).await;

    // The database comes back on the same port; the service is not restarted.
    let restarting = Instant::now();
    tokio::task::block_in_place(|| postgres.pg_ctl_start());
    let up = Instant::now();
    println!("PostgreSQL started again in {:.1?}", up - restarting);

    let deadline = up + RECOVERY_BOUND;
    loop {
        let (ready, _) = get_status(&http, format!("{address}/readyz")).await;
        if ready == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz is still {ready:?} {RECOVERY_BOUND:?} after the database came back; the server's log ends:\n{}",
            server.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = up.elapsed();
    let recovered = loop {
        let result =
            request(&http, &address, &intake, SUBMIT, submission(&format!("{run}-after")), "submitAppeal").await;
        match result {
            Ok(payload) => break payload,
            Err(failure) => assert!(
                Instant::now() < deadline,
                "no submission succeeded {RECOVERY_BOUND:?} after the database came back: {failure:?}\n{}",
                server.log_tail(30)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let recovered_after = up.elapsed();
    assert!(recovered["appeal"]["id"].is_string(), "the submission after the outage: {recovered}");
    // Let the trickle run a little past the recovery, then stop it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::SeqCst);
    for request in trickle.await.expect("the trickle should not panic") {
        request.await.expect("a request of the trickle should not panic");
    }
    let outcomes = outcomes.lock().unwrap().clone();

    // Every request of the trickle was answered in time, with a success or a
    // failure the outage allows; those sent while the database was down failed.
    let mut problems = Vec::new();
    let (mut succeeded, mut failed_while_down) = (Vec::new(), 0);
    for outcome in &outcomes {
        if outcome.took >= ANSWER_BOUND {
            problems.push(format!("{} took {:.1?}: {:?}", outcome.what, outcome.took, outcome.result));
        }
        match &outcome.result {
            Ok(payload) => {
                if outcome.sent > down && outcome.sent + outcome.took < restarting {
                    problems.push(format!("{} succeeded while the database was down: {payload}", outcome.what));
                }
                if let Some(appeal) = payload.get("appeal") {
                    succeeded.push(appeal.clone());
                }
            }
            Err(failure) => {
                if outcome.sent > down && outcome.sent + outcome.took < restarting {
                    failed_while_down += 1;
                }
                if let Err(problem) = acceptable_failure(failure) {
                    problems.push(format!("{}: {problem}", outcome.what));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the trickle:\n{}\nthe server's log ends:\n{}",
        problems.join("\n"),
        server.log_tail(30)
    );
    assert!(failed_while_down >= 10, "the trickle should have run through the outage: {failed_while_down} requests");

    // Nothing acknowledged is lost: the appeals from before the outage, and every
    // submission of the trickle that was answered with success, are there, both
    // through the service and in the database.
    let acknowledged: Vec<Value> = before.iter().chain(&succeeded).chain([&recovered["appeal"]]).cloned().collect();
    for appeal in &acknowledged {
        let read = request(&http, &address, &governor, READ, json!({ "id": appeal["id"] }), "appeal").await;
        let read = read.unwrap_or_else(|failure| panic!("reading {appeal} after the outage: {failure:?}"));
        assert_eq!(read["number"], appeal["number"], "the acknowledged appeal {appeal} after the outage");
    }
    let store = Store::open(&url, PoolSettings::default()).await.expect("the database should open");
    for appeal in &acknowledged {
        let id = appeal["id"].as_str().and_then(|id| id.parse().ok()).expect("an appeal id");
        let stored = store.appeal(id).await.expect("the appeal should load");
        assert!(stored.is_some_and(|stored| stored.number == appeal["number"]), "{appeal} is not in the database");
    }
    let audit = store.verify_all().await.expect("the audit should run");
    assert!(audit.first_failure.is_none(), "the audit after the outage: {:?}", audit.first_failure);
    store.close().await.expect("the store should close");
    drop(server);

    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in &outcomes {
        if let Err(failure) = &outcome.result {
            let kind = match failure {
                Failure::Coded { status, code, .. } => format!("HTTP {status} {code}"),
                Failure::Status(status) => format!("HTTP {status}"),
                Failure::NoAnswer(_) => "no answer".to_owned(),
            };
            *failures.entry(kind).or_default() += 1;
        }
    }
    let answered_down: Vec<Duration> = outcomes
        .iter()
        .filter(|outcome| outcome.sent > down && outcome.sent + outcome.took < restarting)
        .map(|outcome| outcome.took)
        .collect();
    println!(
        "the outage: {} requests in the trickle, {failed_while_down} failed fast while the database was down \
         (slowest {:.1?}; failures by kind: {failures:?}), {} submissions acknowledged and all kept; \
         /readyz 200 again {ready_after:.1?} and a submission succeeded {recovered_after:.1?} after PostgreSQL \
         came back; {} appeals audited; the test took {:.1?}",
        outcomes.len(),
        answered_down.iter().max().copied().unwrap_or_default(),
        acknowledged.len(),
        audit.appeals_checked,
        started.elapsed(),
    );
    drop(postgres);
}
