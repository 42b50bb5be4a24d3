//! The console in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) against the real `starfire serve` with the default model. It signs up, creates a
//! project and a key, streams a chat in the playground, invites a member who accepts, and revokes
//! the key, asserting what each page shows; a screenshot of every page lands in
//! `target/console-screenshots/`.
//!
//! It needs `chromium` and `chromium-driver` (`scripts/test` installs them); without them it fails
//! and says so.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::e2e::free_port;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_starfire");

pub(crate) struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first of `names` found on PATH.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn screenshot_dir() -> PathBuf {
    let target = option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `program args` accepts `source` on stdin (a syntax check).
fn parses(program: &str, args: &[&str], source: &str) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(source.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} refuses the snippet: {}\n{source}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Session {
    client: Client,
    base: String,
    shots: PathBuf,
    count: usize,
}

impl Session {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn screenshot(&mut self, name: &str) {
        self.count += 1;
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(
            self.shots.join(format!("{:02}-{name}.png", self.count)),
            png,
        )
        .unwrap();
    }

    /// The text of `css`, retried while the page is still changing (a click that navigates
    /// returns before the next page has replaced the old one).
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match found {
                Ok(text) => return text,
                Err(e) if Instant::now() >= deadline => panic!("{css} on the page: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits until `css`'s text is `expected`, or fails saying what it was.
    async fn wait_text(&self, css: &str, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} should read {expected:?}, reads {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the page whose heading is `expected`; fails with the page's error if any.
    async fn expect_heading(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let heading = self.text("h1").await;
            if heading == expected {
                return;
            }
            if Instant::now() >= deadline {
                let error = match self.client.find(Locator::Css(".error")).await {
                    Ok(element) => element.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("expected the page {expected:?}, got {heading:?} {error}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A headless Debian chromium driven through chromedriver (dropping the process stops it).
pub(crate) async fn headless_chromium() -> (Client, Process) {
    let driver = which(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "the browser tests need chromedriver and chromium: \
             `apt-get install -y chromium chromium-driver` (scripts/test installs them)"
        )
    });
    let chromium = which(&["chromium", "chromium-browser"]).unwrap_or_else(|| {
        panic!(
            "the browser tests need chromium: `apt-get install -y chromium \
             chromium-driver` (scripts/test installs them)"
        )
    });
    let driver_port = free_port();
    let mut chromedriver = Process(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(driver_port, "chromedriver", &mut chromedriver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a chromium session through chromedriver");
    (client, chromedriver)
}

#[actix_web::test]
async fn console_in_a_headless_browser() {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");

    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    let mut server = Process(
        cmd.env("STARFIRE_HOME", home.path())
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STARFIRE_MODEL_PATH", &model)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "starfire serve", &mut server);
    let (client, _chromedriver) = headless_chromium().await;
    let mut s = Session {
        client,
        base: format!("http://127.0.0.1:{port}"),
        shots: screenshot_dir(),
        count: 0,
    };
    let result = run(&mut s).await;
    let _ = s.client.close().await;
    result
}

/// The console as a new user meets it, one step after another in one browser session.
async fn run(s: &mut Session) {
    sign_up(s).await;
    skip_link(s).await;
    let keys_url = project_and_key(s).await;
    project_limits(s).await;
    billing_before_requests(s).await;
    let used = playground(s).await;
    usage_after_request(s, used).await;
    billing_after_request(s, used.requests).await;
    let link = invite_member(s).await;
    revoke_key(s, &keys_url).await;
    audit_log(s).await;
    invitee_joins(s, &link).await;
    phone_width(s).await;
}

async fn sign_up(s: &mut Session) {
    // Sign up.
    s.goto("/").await;
    s.expect_heading("Sign in").await;
    s.screenshot("signin").await;
    s.goto("/signup").await;
    s.expect_heading("Create your account").await;
    s.fill("#email", "browser@example.com").await;
    s.fill("#password", "password123").await;
    s.fill("#organization_name", "Browser Org").await;
    s.screenshot("signup").await;
    s.click("button[type=submit]").await;
    s.expect_heading("Projects").await;
    s.wait_text("#project-count", "1 project", Duration::from_secs(20))
        .await;
    assert!(s.text("header").await.contains("Browser Org"));
    s.screenshot("projects").await;
}

async fn skip_link(s: &mut Session) {
    // Keyboard: the first Tab lands on the skip link, which shows a focus outline; Enter on it
    // moves focus to the page's content.
    let body = s.client.active_element().await.unwrap();
    body.send_keys(&fantoccini::key::Key::Tab.to_string())
        .await
        .unwrap();
    let focused: Vec<serde_json::Value> = s
        .client
        .execute(
            "const e = document.activeElement; \
             return [e.textContent, getComputedStyle(e).outlineStyle, getComputedStyle(e).left];",
            vec![],
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(focused[0], "Skip to content", "{focused:?}");
    assert_eq!(focused[1], "solid", "a visible focus outline: {focused:?}");
    s.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    let id = s
        .client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(id, "main", "the skip link moves focus to the content");
}

async fn project_and_key(s: &mut Session) -> String {
    // A project, then a key: the secret shown once, the copy button enabled by the script.
    s.fill("#project-name", "Browser project").await;
    s.click("main button[type=submit]").await;
    s.expect_heading("API keys · Browser project").await;
    s.wait_text("#key-count", "0 live keys", Duration::from_secs(20))
        .await;
    s.screenshot("keys-empty").await;
    s.fill("#key-name", "browser key").await;
    s.fill("#key-rpm", "120").await;
    s.click("main form button[type=submit]").await;
    let secret = s.text("#new-key").await;
    assert!(secret.starts_with("sf-"), "{secret}");
    s.wait_text("#key-count", "1 live key", Duration::from_secs(20))
        .await;
    let copy = s
        .client
        .find(Locator::Css("button[data-copy=new-key]"))
        .await
        .unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "console.js ran (CSP allows it) and showed the copy button"
    );
    let row = s.text("tbody").await;
    assert!(row.contains("never") && row.contains("rpm 120"), "{row}");
    s.screenshot("key-created").await;
    let keys_url = s.client.current_url().await.unwrap().to_string();
    keys_url
}

async fn project_limits(s: &mut Session) {
    // The project's rate limits.
    s.click("main a[href$='/limits']").await;
    s.expect_heading("Rate limits · Browser project").await;
    s.wait_text("#project-limits", "default", Duration::from_secs(20))
        .await;
    s.fill("#project-tpm", "50000").await;
    s.click("main form button[type=submit]").await;
    s.wait_text("#project-limits", "tpm 50000", Duration::from_secs(20))
        .await;
    s.screenshot("limits").await;
}

async fn billing_before_requests(s: &mut Session) {
    // Billing before any request: the free grant, untouched.
    s.goto("/billing").await;
    s.expect_heading("Billing").await;
    s.wait_text("#balance-value", "$5.000000", Duration::from_secs(20))
        .await;
    assert_eq!(s.text("#grant-value").await, "$5.000000");
    s.wait_text("#ledger-count", "1 entry", Duration::from_secs(20))
        .await;
    s.screenshot("billing-before").await;
}

/// What the playground's requests used.
#[derive(Debug, Clone, Copy, Default)]
struct Used {
    requests: u64,
    prompt: u64,
    completion: u64,
}

impl Session {
    /// Sends the playground's form (or `button`'s) and waits for the answer; adds its usage.
    async fn playground_send(&self, button: &str, used: &mut Used) {
        self.click(button).await;
        self.wait_text("#status", "Done.", Duration::from_secs(120))
            .await;
        let stat = |v: String| v.parse::<u64>().unwrap_or_else(|e| panic!("{e}: {v:?}"));
        used.requests += 1;
        used.prompt += stat(self.text("#stat-prompt").await);
        used.completion += stat(self.text("#stat-completion").await);
    }

    async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
            .select_by_value(value)
            .await
            .unwrap();
    }
}

async fn playground(s: &mut Session) -> Used {
    // The playground streams an answer with tokens/s and usage.
    s.goto("/playground").await;
    s.expect_heading("Playground").await;
    s.fill("#max_tokens", "16").await;
    s.fill("#prompt", "Say hello.").await;
    let curl = s.text("#curl").await;
    assert!(
        curl.contains(&format!("curl {}/v1/chat/completions", s.base)),
        "{curl}"
    );
    assert!(curl.contains("\"max_tokens\":16"), "{curl}");
    let python = s.text("#python").await;
    assert!(python.contains("from openai import OpenAI"), "{python}");
    assert!(
        python.contains("max_tokens=16,") && python.contains("stream=True,"),
        "{python}"
    );
    assert!(
        python.contains(&format!("base_url=\"{}/v1\"", s.base)),
        "{python}"
    );
    let typescript = s.text("#typescript").await;
    assert!(
        typescript.contains("\"max_tokens\": 16") && typescript.contains("for await"),
        "{typescript}"
    );
    // Each snippet parses in its language (the TypeScript one is plain JavaScript too).
    parses("bash", &["-n"], &curl);
    parses(
        "python3",
        &["-c", "import ast, sys; ast.parse(sys.stdin.read())"],
        &python,
    );
    if which(&["node"]).is_some() {
        parses("node", &["--input-type=module", "--check"], &typescript);
    }
    let mut used = Used::default();
    s.playground_send("#playground button[type=submit]", &mut used)
        .await;
    let answer = s.text("#answer").await;
    assert!(!answer.trim().is_empty(), "a streamed answer");
    let completion: u64 = s.text("#stat-completion").await.parse().unwrap();
    assert!((1..=16).contains(&completion), "{completion}");
    let prompt: u64 = s.text("#stat-prompt").await.parse().unwrap();
    let total: u64 = s.text("#stat-total").await.parse().unwrap();
    assert_eq!(total, prompt + completion);
    let rate: f64 = s.text("#stat-rate").await.parse().unwrap();
    assert!(rate > 0.0, "{rate}");
    s.screenshot("playground").await;

    // The next message continues the conversation: its prompt holds the first turn.
    s.fill("#prompt", "Say it again.").await;
    s.playground_send("#playground button[type=submit]", &mut used)
        .await;
    let transcript = s.text("#conversation").await;
    assert!(
        transcript.contains("Say hello.") && transcript.contains("Say it again."),
        "{transcript}"
    );
    let second: u64 = s.text("#stat-prompt").await.parse().unwrap();
    assert!(
        second > prompt + completion,
        "{second} after {prompt} + {completion}"
    );

    // JSON mode with a schema: the answer is that JSON.
    s.click("#reset").await;
    assert_eq!(s.text("#conversation").await, "");
    s.click("#json_mode").await;
    s.fill(
        "#schema",
        r#"{"type": "object", "properties": {"greeting": {"type": "string", "maxLength": 20}}, "required": ["greeting"], "additionalProperties": false}"#,
    )
    .await;
    // Room for the longest string the schema allows: 20 characters can take 80 byte tokens
    // (the greedy answer on the AVX-512 path is emoji), and the grammar then closes the object.
    s.fill("#max_tokens", "100").await;
    s.fill("#prompt", "Greet me as JSON.").await;
    assert!(s.text("#curl").await.contains("\"json_schema\""));
    s.playground_send("#playground button[type=submit]", &mut used)
        .await;
    let answer = s.text("#answer").await;
    let greeting: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert!(greeting["greeting"].is_string(), "{answer}");
    s.screenshot("playground-json").await;

    // Tools: a required call is shown with a box for its result, which continues the chat.
    s.click("#reset").await;
    s.click("#json_mode").await;
    s.fill(
        "#tools",
        r#"[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"], "additionalProperties": false}}}]"#,
    )
    .await;
    s.select("#tool_choice", "required").await;
    s.fill("#max_tokens", "60").await;
    s.fill("#prompt", "What is the weather in Paris?").await;
    s.playground_send("#playground button[type=submit]", &mut used)
        .await;
    let answer = s.text("#answer").await;
    assert!(answer.starts_with("calls get_weather({"), "{answer}");
    assert!(s
        .text("#tool-calls")
        .await
        .contains("Result of get_weather("));
    s.screenshot("playground-tool-call").await;
    s.select("#tool_choice", "none").await;
    s.fill("#tool-result-0", "18 degrees and sunny").await;
    s.playground_send("#send-results", &mut used).await;
    let transcript = s.text("#conversation").await;
    assert!(
        transcript.contains("calls get_weather(")
            && transcript.contains("tool result 18 degrees and sunny"),
        "{transcript}"
    );
    assert!(!s.text("#answer").await.trim().is_empty());
    s.screenshot("playground-tool-result").await;
    used
}

async fn usage_after_request(s: &mut Session, used: Used) {
    let Used {
        requests,
        prompt,
        completion,
    } = used;
    // The usage page charts the requests (the playground runs as the session: no key).
    s.goto("/usage").await;
    s.expect_heading("Usage").await;
    s.wait_text(
        "#total-requests",
        &requests.to_string(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(s.text("#total-input").await, prompt.to_string());
    assert_eq!(s.text("#total-output").await, completion.to_string());
    let caption = s.text("figure.chart figcaption").await;
    assert!(
        caption.contains(&format!("{} tokens", prompt + completion)),
        "{caption}"
    );
    let bars = s
        .client
        .find_all(Locator::Css("#chart-all rect.bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 7, "one bar a day for the last week");
    assert!(s
        .text("#usage-table")
        .await
        .contains("smollm2-135m-instruct"));
    s.screenshot("usage").await;
}

async fn billing_after_request(s: &mut Session, requests: u64) {
    // The balance went down by the requests' cost, which the ledger lists (after the grant).
    s.goto("/billing").await;
    s.expect_heading("Billing").await;
    let entries = format!("{} entries", requests + 1);
    s.wait_text("#ledger-count", &entries, Duration::from_secs(20))
        .await;
    let balance = s.text("#balance-value").await;
    assert_ne!(balance, "$5.000000");
    assert!(balance.starts_with("$4.99"), "{balance}");
    assert!(s.text("#ledger").await.contains("usage"));
    // The month's running statement shows the request; nothing is finalized yet.
    assert_eq!(s.text("#upcoming-status").await, "draft");
    assert_ne!(s.text("#upcoming-subtotal").await, "$0.000000");
    assert_eq!(s.text("#invoice-count").await, "0 finalized invoices");
    s.screenshot("billing-after").await;
}

async fn invite_member(s: &mut Session) -> String {
    // Invite a member.
    s.goto("/members").await;
    s.wait_text("#member-count", "1 member", Duration::from_secs(20))
        .await;
    s.fill("#invite-email", "invitee@example.com").await;
    s.click("main form button[type=submit]").await;
    let link = s.text("#invite-link").await;
    assert!(link.contains("/invite?token=sfi-"), "{link}");
    assert!(s.text("#invites").await.contains("invitee@example.com"));
    s.screenshot("members-invited").await;
    link
}

async fn revoke_key(s: &mut Session, keys_url: &str) {
    // Revoke the key, through the confirmation page.
    s.client.goto(keys_url).await.unwrap();
    s.click("a[href$='/revoke']").await;
    s.expect_heading("Revoke key").await;
    s.screenshot("revoke-confirm").await;
    s.click("button.danger").await;
    s.wait_text("#key-count", "0 live keys", Duration::from_secs(20))
        .await;
    s.screenshot("keys-revoked").await;
}

async fn audit_log(s: &mut Session) {
    // The audit log lists what happened, newest first.
    s.goto("/audit").await;
    s.expect_heading("Audit log").await;
    let log = s.text("#audit").await;
    for action in [
        "api_key.deleted",
        "invite.sent",
        "project.updated",
        "api_key.created",
        "project.created",
    ] {
        assert!(log.contains(action), "{action} in {log}");
    }
    s.screenshot("audit").await;
}

async fn invitee_joins(s: &mut Session, link: &str) {
    // Sign out; the invitee accepts through the link.
    s.click("#signout button").await;
    s.expect_heading("Sign in").await;
    s.client.goto(link).await.unwrap();
    s.expect_heading("You are invited").await;
    s.screenshot("invite-landing").await;
    s.click("a.button").await;
    s.expect_heading("Create your account").await;
    s.fill("#password", "password123").await;
    s.click("button[type=submit]").await;
    s.expect_heading("Projects").await;
    s.wait_text("#project-count", "2 projects", Duration::from_secs(20))
        .await;
    s.wait_text("#role", "developer", Duration::from_secs(20))
        .await;
    s.goto("/members").await;
    s.wait_text("#member-count", "2 members", Duration::from_secs(20))
        .await;
    s.screenshot("members-joined").await;
}

async fn phone_width(s: &mut Session) {
    // Phone width: the navigation and tables still fit.
    s.client.set_window_size(390, 844).await.unwrap();
    s.goto("/projects").await;
    s.expect_heading("Projects").await;
    let width: f64 = s
        .client
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        width <= 400.0,
        "no horizontal scrolling at phone width: {width}"
    );
    s.screenshot("projects-phone").await;
    s.goto("/usage").await;
    s.expect_heading("Usage").await;
    let width: f64 = s
        .client
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(width <= 400.0, "usage fits a phone: {width}");
    s.screenshot("usage-phone").await;
}
