//! Headless Chromium driven over WebDriver, for the tests of pages in a browser:
//! Debian's `chromium` and its `chromedriver` (`chromium-driver`), and the
//! fantoccini client. One [`Browser`] is one chromedriver, one Chromium and one
//! fresh profile, all gone when it is dropped.
//!
//! The browser can reach nothing but 127.0.0.1, and a test can prove it. Every
//! other name is unresolvable (`--host-resolver-rules`), and every request to
//! another host goes, unresolved, to a recorder in the test process that Chromium
//! takes for its HTTP proxy: the recorder keeps the request's first line
//! (`GET http://host/…`, `CONNECT host:443`) and answers 502.
//! [`Browser::requests_elsewhere`] is what it kept. Chromium sends loopback
//! requests past any proxy, so the pages under test still load directly.
//!
//! Every wait is bounded; a wait that times out panics with the page's address,
//! its visible text and the browser's console.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::process::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for the page ([`Browser::wait_for`] and the like) may take.
const WAIT: Duration = Duration::from_secs(10);

/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);

/// How long chromedriver may take to listen, and Chromium to start a session.
const START: Duration = Duration::from_secs(30);

/// How long one command to the browser may take (a page load, a script).
const COMMAND: Duration = Duration::from_secs(30);

/// Chromium's command line, but for the profile, proxy and window size that
/// [`Browser::start`] adds: headless, as root, in Russian, and quiet. The flags
/// after the host resolver rules each stop requests that a fresh profile of
/// Chromium 156 sent to Google's hosts with the others alone, as the recorder
/// saw them; no request is filtered out afterwards.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    // Debian ships only the en-US locale; without `chromium-l10n` this flag is
    // ignored, and the `intl.accept_languages` preference below is what makes
    // `navigator.language` and `Accept-Language` Russian.
    "--lang=ru-RU",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    // `clients2.google.com/time/…` (the network time tracker),
    // `optimizationguide-pa.googleapis.com/v1:GetModels` after the first page load,
    // and `content-autofill.googleapis.com` (autofill's queries about a page's forms).
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,AutofillServerCommunication",
    // `update.googleapis.com/service/update2/json`, asking for the on-device models'
    // manifest component, which `--disable-component-update` does not stop: with an
    // override (here a file that does not exist) the manifest is not downloaded.
    "--optimization-guide-manifest-override=/nonexistent/appeals-no-model-manifest.json",
    // `accounts.google.com/ListAccounts`, sent three times at start-up for every
    // profile; no flag or preference stops it (`--allow-browser-signin=false` and
    // `signin.allowed` do not). Port 9 is on Chromium's list of unsafe ports, so
    // the request fails (`ERR_UNSAFE_PORT`) before any connection is made.
    "--gaia-url=http://127.0.0.1:9",
];

/// A headless Chromium under chromedriver, its requests to other hosts recorded.
pub struct Browser {
    client: Client,
    session: String,
    chromedriver_url: String,
    http: reqwest::Client,
    /// The browser's log, as read so far: chromedriver hands each entry out once.
    console: Mutex<Vec<ConsoleEntry>>,
    recorder: Recorder,
    /// Last, so that the processes are killed after the client lets go of them.
    _processes: Processes,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session on a
    /// fresh profile, its window 1280×900. `None` (with a printed note) when
    /// Chromium or chromedriver is not installed, except under `CI`, where that
    /// panics: there the browser tests may not be skipped.
    pub async fn start() -> Option<Browser> {
        if !is_installed() {
            return None;
        }
        let scratch = std::env::temp_dir().join(format!("appeals-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&scratch).expect("a scratch directory");
        let port = free_port();
        let log = std::fs::File::create(scratch.join("chromedriver.log")).expect("a file for chromedriver's log");
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("chromedriver's log"))
            .stderr(log)
            // Its own process group, which Chromium's processes stay in (but for
            // its crash handlers, which leave it and exit with Chromium): one
            // signal to the group ends them all, whatever state the session is in.
            .process_group(0)
            .spawn()
            .expect("chromedriver should start");
        let mut processes = Processes { chromedriver, scratch };
        let chromedriver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(COMMAND).build().expect("a client");
        processes.wait_until_listening(&http, &chromedriver_url).await;

        let recorder = Recorder::start().await;
        let capabilities = capabilities(&processes.scratch.join("profile"), recorder.port);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(START, builder.connect(&chromedriver_url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!("no Chromium session: {error}; chromedriver's log:\n{}", processes.log()),
            Err(_) => panic!("no Chromium session within {START:?}; chromedriver's log:\n{}", processes.log()),
        };
        let session = client.session_id().await.ok().flatten().expect("a session has an id");
        Some(Browser {
            client,
            session,
            chromedriver_url,
            http,
            console: Mutex::new(Vec::new()),
            recorder,
            _processes: processes,
        })
    }

    /// Loads `url` and returns when the page has loaded (its `load` event).
    pub async fn goto(&self, url: &str) {
        let result = self.bounded(self.client.goto(url)).await;
        result.unwrap_or_else(|error| panic!("loading {url}: {error}"));
    }

    /// Makes the page's CSS viewport exactly `width`×`height` as a phone has it
    /// (the page's `viewport` meta tag applies, and scrollbars overlay the page
    /// instead of taking its width; no touch), for this page and the next ones. The window's size
    /// would not do: headless Chromium takes 143 px of the window's height for a
    /// browser frame it does not draw, and reports no window narrower than 500 px.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let params = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": true });
        let command = json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": params });
        let result = self.chromedriver("goog/cdp/execute", command).await;
        result.unwrap_or_else(|error| panic!("a {width}×{height} viewport: {error}"));
    }

    /// The first displayed element that matches `css`, once there is one
    /// (waiting at most [`WAIT`], 10 seconds).
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_until(&format!("an element to match `{css}`"), async || self.displayed(css).await.into_iter().next())
            .await
    }

    /// As [`Browser::wait_for`], for at most `limit`: for what must happen in time.
    pub async fn wait_for_within(&self, css: &str, limit: Duration) -> Element {
        let what = format!("an element to match `{css}`");
        self.wait_within(limit, &what, async || self.displayed(css).await.into_iter().next()).await
    }

    /// Waits until a displayed element that matches `css` shows `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) {
        self.wait_until(&format!("an element matching `{css}` to show {text:?}"), async || {
            for element in self.displayed(css).await {
                if element.text().await.is_ok_and(|shown| shown.contains(text)) {
                    return Some(());
                }
            }
            None
        })
        .await
    }

    /// Waits until no element that matches `css` is displayed (none is left, or
    /// all are hidden).
    pub async fn wait_gone(&self, css: &str) {
        let what = format!("no displayed element to match `{css}`");
        self.wait_until(&what, async || self.displayed(css).await.is_empty().then_some(())).await
    }

    /// Clicks the element that [`Browser::wait_for`] finds.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        let result = self.bounded(element.click()).await;
        result.unwrap_or_else(|error| panic!("clicking `{css}`: {error}"));
    }

    /// Clears the field that matches `css` and types `text` into it, key by key.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        let result = self.bounded(async { element.clear().await.and(element.send_keys(text).await) }).await;
        result.unwrap_or_else(|error| panic!("typing into `{css}`: {error}"));
    }

    /// Chooses the option whose `value` is `value` in the `<select>` that matches `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let element = self.wait_for(css).await;
        let result = self.bounded(element.select_by_value(value)).await;
        result.unwrap_or_else(|error| panic!("choosing {value:?} in `{css}`: {error}"));
    }

    /// The text shown by the element that [`Browser::wait_for`] finds.
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        let result = self.bounded(element.text()).await;
        result.unwrap_or_else(|error| panic!("the text of `{css}`: {error}"))
    }

    /// The text shown by every displayed element that matches `css` now, in the
    /// page's order; without waiting, so an empty list is an answer.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.displayed(css).await {
            let result = self.bounded(element.text()).await;
            texts.push(result.unwrap_or_else(|error| panic!("the text of `{css}`: {error}")));
        }
        texts
    }

    /// Runs `js` as a function body in the page and returns what it returns
    /// (`return …;`); a returned promise is awaited.
    pub async fn eval(&self, js: &str) -> Value {
        let result = self.bounded(self.client.execute(js, Vec::new())).await;
        result.unwrap_or_else(|error| panic!("running {js:?}: {error}"))
    }

    /// Saves the whole page, as tall as it is, as `target/screenshots/<name>.png`
    /// under the workspace, where CI keeps it, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let params = json!({ "format": "png", "captureBeyondViewport": true });
        let command = json!({ "cmd": "Page.captureScreenshot", "params": params });
        let result = self.chromedriver("goog/cdp/execute", command).await;
        let answer = result.unwrap_or_else(|error| panic!("a screenshot: {error}"));
        let encoded = answer["data"].as_str().unwrap_or_else(|| panic!("a screenshot: {answer}"));
        let png = base64::engine::general_purpose::STANDARD.decode(encoded).expect("a screenshot is base64");
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
        std::fs::create_dir_all(&directory).expect("the screenshots' directory");
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot should be saved");
        path
    }

    /// The first line of every request Chromium has tried to send to a host other
    /// than 127.0.0.1 since it started (`GET http://host/path HTTP/1.1`,
    /// `CONNECT host:443 HTTP/1.1`), in the order they came.
    pub fn requests_elsewhere(&self) -> Vec<String> {
        self.recorder.requests.lock().expect("the recorder's list").clone()
    }

    /// Every error the browser has logged since it started: the console's
    /// errors, the pages' failed loads, and what a Content-Security-Policy
    /// refused (source `security`), each as `source: message`.
    pub async fn console_errors(&self) -> Vec<String> {
        self.read_console().await.unwrap_or_else(|error| panic!("the browser's log: {error}"));
        let console = self.console.lock().expect("the console");
        console.iter().filter(|entry| entry.level == "SEVERE").map(|entry| entry.source_and_message()).collect()
    }

    /// The end of a test of a page: the browser asked nothing of any host but
    /// 127.0.0.1, and no page's Content-Security-Policy had anything to refuse.
    /// Then [`Browser::close`].
    pub async fn finish(self) {
        let elsewhere = self.requests_elsewhere();
        let refused: Vec<String> =
            self.console_errors().await.into_iter().filter(|error| error.starts_with("security:")).collect();
        self.close().await;
        assert_eq!(elsewhere, Vec::<String>::new(), "requests that left 127.0.0.1");
        assert_eq!(refused, Vec::<String>::new(), "what the page's policy refused");
    }

    /// Ends the session, so that Chromium quits on its own, then stops chromedriver.
    pub async fn close(self) {
        let _ = tokio::time::timeout(COMMAND, self.client.close()).await;
    }

    /// The displayed elements that match `css` now; an element that goes stale
    /// while it is looked at is left out.
    async fn displayed(&self, css: &str) -> Vec<Element> {
        let looking = async {
            let mut displayed = Vec::new();
            for element in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
                if element.is_displayed().await.unwrap_or(false) {
                    displayed.push(element);
                }
            }
            displayed
        };
        tokio::time::timeout(COMMAND, looking).await.unwrap_or_default()
    }

    /// Calls `probe` until it returns something, for at most [`WAIT`]; then
    /// panics with `what` it waited for and the state of the page.
    async fn wait_until<T>(&self, what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
        self.wait_within(WAIT, what, probe).await
    }

    /// As [`Browser::wait_until`], for at most `limit`.
    async fn wait_within<T>(&self, limit: Duration, what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
        let waiting = async {
            loop {
                if let Some(found) = probe().await {
                    return found;
                }
                tokio::time::sleep(POLL).await;
            }
        };
        match tokio::time::timeout(limit, waiting).await {
            Ok(found) => found,
            Err(_) => panic!("waited {limit:?} for {what}\n{}", self.describe_page().await),
        }
    }

    /// The page's address, its visible text and the browser's log, for a failure's message.
    async fn describe_page(&self) -> String {
        let url = match self.bounded(self.client.current_url()).await {
            Ok(url) => url.to_string(),
            Err(error) => format!("(unknown: {error})"),
        };
        let text = match self.bounded(self.client.execute("return document.body?.innerText ?? ''", Vec::new())).await {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(error) => format!("(unknown: {error})"),
        };
        let unread = self.read_console().await.err().map(|error| format!("(the rest unread: {error})"));
        let console = self.console.lock().expect("the console");
        let console: Vec<String> = console
            .iter()
            .map(|entry| format!("{} {}", entry.level, entry.source_and_message()))
            .chain(unread)
            .collect();
        format!("the page: {url}\nits text:\n{text}\nthe browser's log:\n{}", console.join("\n"))
    }

    /// Moves what chromedriver has logged since the last read into `console`.
    async fn read_console(&self) -> Result<(), String> {
        let entries = self.chromedriver("se/log", json!({ "type": "browser" })).await?;
        let entries = entries.as_array().into_iter().flatten().map(|entry| ConsoleEntry {
            level: entry["level"].as_str().unwrap_or_default().to_owned(),
            source: entry["source"].as_str().unwrap_or_default().to_owned(),
            message: entry["message"].as_str().unwrap_or_default().to_owned(),
        });
        self.console.lock().expect("the console").extend(entries);
        Ok(())
    }

    /// Sends one of chromedriver's own commands (not WebDriver's) to the session
    /// and returns its `value`.
    async fn chromedriver(&self, command: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/session/{}/{command}", self.chromedriver_url, self.session);
        let response = self.http.post(&url).json(&body).send().await.map_err(|error| format!("POST {url}: {error}"))?;
        let status = response.status();
        let mut answer: Value = response.json().await.map_err(|error| format!("POST {url}: {error}"))?;
        if !status.is_success() {
            return Err(format!("POST {url} {body}: {status} {answer}"));
        }
        Ok(answer["value"].take())
    }

    /// `command` within [`COMMAND`], as a result like the command's own.
    async fn bounded<T>(
        &self,
        command: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(COMMAND, command).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {COMMAND:?}")),
        }
    }
}

/// Whether both Chromium and chromedriver are there; under `CI` their absence fails the test.
fn is_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|path| !Path::new(path).is_file()).collect();
    if missing.is_empty() {
        return true;
    }
    let note = format!("no {} (apt-get install chromium chromium-driver)", missing.join(" and no "));
    assert!(std::env::var_os("CI").is_none(), "in CI the browser tests may not be skipped: {note}");
    println!("skipped: {note}");
    false
}

/// The session's capabilities: Chromium's command line and preferences, the
/// browser's log kept in full, and bounds on a page load and a script.
fn capabilities(profile: &Path, proxy_port: u16) -> serde_json::Map<String, Value> {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--proxy-server=http://127.0.0.1:{proxy_port}"));
    args.push("--window-size=1280,900".to_owned());
    let preferences = json!({
        "intl": { "accept_languages": "ru-RU,ru" },
        // Start on a blank page: the default new-tab page loads the default
        // search engine's (start.duckduckgo.com, in Debian's build).
        "session": { "restore_on_startup": 4, "startup_urls": ["about:blank"] },
    });
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": preferences },
        "goog:loggingPrefs": { "browser": "ALL" },
        "timeouts": { "pageLoad": COMMAND.as_millis() as u64, "script": COMMAND.as_millis() as u64 },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
    capabilities
}

/// An entry of the browser's log, as chromedriver gives it.
struct ConsoleEntry {
    level: String,
    source: String,
    message: String,
}

impl ConsoleEntry {
    fn source_and_message(&self) -> String {
        format!("{}: {}", self.source, self.message)
    }
}

/// chromedriver and the scratch directory that holds its log and Chromium's profile.
struct Processes {
    chromedriver: Child,
    scratch: PathBuf,
}

impl Processes {
    /// Waits until chromedriver answers that it is ready, for at most [`START`].
    async fn wait_until_listening(&mut self, http: &reqwest::Client, url: &str) {
        let ready = async {
            loop {
                if let Ok(response) = http.get(format!("{url}/status")).send().await
                    && let Ok(status) = response.json::<Value>().await
                    && status["value"]["ready"] == true
                {
                    return;
                }
                if let Ok(Some(status)) = self.chromedriver.try_wait() {
                    panic!("chromedriver exited ({status}); its log:\n{}", self.log());
                }
                tokio::time::sleep(POLL).await;
            }
        };
        if tokio::time::timeout(START, ready).await.is_err() {
            panic!("chromedriver did not listen within {START:?}; its log:\n{}", self.log());
        }
    }

    fn log(&self) -> String {
        let path = self.scratch.join("chromedriver.log");
        std::fs::read_to_string(&path).unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
    }
}

impl Drop for Processes {
    /// Kills chromedriver's process group, which holds Chromium and every
    /// process it started, then removes the profile. After [`Browser::close`]
    /// Chromium has already quit; after a panic this is what ends it.
    fn drop(&mut self) {
        let group = format!("-{}", self.chromedriver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The proxy Chromium sends every request for another host to: it keeps each
/// connection's first line and answers 502.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the recorder");
        let port = listener.local_addr().expect("the recorder's address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(record(connection, Arc::clone(&recorded)));
            }
        });
        Recorder { port, requests, task }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps the first line of what `connection` sends (once it ends, or after 8 KiB
/// or 5 seconds), then answers 502. The line is kept before the answer, so a page
/// that has seen its request fail finds it recorded.
async fn record(mut connection: TcpStream, requests: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let reading = async {
        let mut buffer = [0; 1024];
        while !head.contains(&b'\n') && head.len() < 8192 {
            match connection.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), reading).await;
    let head = String::from_utf8_lossy(&head);
    if let Some(line) = head.lines().next().filter(|line| !line.is_empty()) {
        requests.lock().expect("the recorder's list").push(line.to_owned());
    }
    let _ = connection.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
}
