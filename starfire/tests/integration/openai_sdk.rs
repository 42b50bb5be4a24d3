//! The official OpenAI SDKs against the real `starfire serve`: the Python SDK's tests
//! (`tests/openai-sdk/python`, unittest) and the Node SDK's (`tests/openai-sdk/node`,
//! `node --test`), both pinned, run against one server on a free loopback port with SQLite in a
//! temporary home and the default model. `scripts/test` installs both SDKs; without them this
//! test fails and says how to install them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::e2e::{bootstrap_with, free_port, starfire, wait_healthy, Server};

/// Prompt tokens one organization may have waiting. Small, so that one long prompt gets 429
/// (every other prompt of the SDK tests is far shorter).
const QUEUE_TOKEN_LIMIT: usize = 256;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the gateway crate sits in the workspace")
        .to_owned()
}

/// Where `scripts/test` installs the Python SDK (`pip install --target`).
fn python_sdk_dir(root: &Path) -> PathBuf {
    root.join("target").join("openai-sdk").join("python")
}

const INSTALL_HINT: &str = "Install the pinned OpenAI SDKs with `scripts/test` (or by hand, from \
the repository root: `python3 -m pip install --target target/openai-sdk/python -r \
tests/openai-sdk/python/requirements.txt` and `(cd tests/openai-sdk/node && npm ci)`).";

/// The version pinned as `name==version` in a requirements file.
fn pinned_python(requirements: &str, name: &str) -> Option<String> {
    requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}==")))
        .map(|v| v.trim().to_owned())
}

/// Fails, saying how to install them, unless both SDKs are installed at their pinned versions.
fn require_sdks(root: &Path) {
    let requirements =
        std::fs::read_to_string(root.join("tests/openai-sdk/python/requirements.txt")).unwrap();
    let want = pinned_python(&requirements, "openai").expect("openai is pinned");
    let out = Command::new("python3")
        .args(["-c", "import openai; print(openai.__version__)"])
        .env("PYTHONPATH", python_sdk_dir(root))
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}). {INSTALL_HINT}"));
    let have = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && have == want,
        "the OpenAI Python SDK {want} is not installed (found {have:?}; {}). {INSTALL_HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );

    let node_dir = root.join("tests/openai-sdk/node");
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(node_dir.join("package.json")).unwrap())
            .unwrap();
    let want = package["devDependencies"]["openai"].as_str().unwrap();
    let installed = std::fs::read_to_string(node_dir.join("node_modules/openai/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let have = installed.as_ref().and_then(|p| p["version"].as_str());
    assert_eq!(
        have,
        Some(want),
        "the OpenAI Node SDK {want} is not installed. {INSTALL_HINT}"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "cannot run node (Node.js 20 or later). {INSTALL_HINT}"
    );
}

/// Runs one SDK suite, which must pass and report at least `min_tests` tests (a suite that
/// found none is a failure too); its whole output when it fails.
fn run_suite(
    what: &str,
    cmd: &mut Command,
    min_tests: usize,
    count: fn(&str) -> Option<usize>,
) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{what}:\n{text}");
    let ran = count(&text);
    if out.status.success() && ran.is_some_and(|n| n >= min_tests) {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}, {ran:?} tests run, at least {min_tests} expected):\n{text}",
        out.status
    ))
}

/// unittest's closing "Ran N tests".
fn unittest_count(output: &str) -> Option<usize> {
    output.lines().find_map(|l| {
        l.strip_prefix("Ran ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// `node --test`'s closing "# pass N".
fn node_test_count(output: &str) -> Option<usize> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("# pass ")?.trim().parse().ok())
}

#[test]
fn official_python_and_node_sdks_work_against_serve() {
    let root = repo_root();
    require_sdks(&root);
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");

    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let with_env = |mut cmd: Command| {
        cmd.env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_KV_CACHE_MEMORY", (256u64 << 20).to_string())
            .env(
                "STARFIRE_MAX_WAITING_TOKENS_PER_TENANT",
                QUEUE_TOKEN_LIMIT.to_string(),
            );
        cmd
    };
    let keys = bootstrap_with(with_env(starfire(home.path())));
    let api_key = keys["api_key"].as_str().unwrap().to_owned();
    let log_path = home.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Server(
        with_env(starfire(home.path()))
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_healthy(port, &mut server);

    let base_url = format!("http://127.0.0.1:{port}/v1");
    let sdk_env = |cmd: &mut Command| {
        cmd.env("OPENAI_BASE_URL", &base_url)
            .env("OPENAI_API_KEY", &api_key)
            .env("STARFIRE_QUEUE_TOKEN_LIMIT", QUEUE_TOKEN_LIMIT.to_string())
            // Neither SDK may pick up an organization or project from the environment.
            .env_remove("OPENAI_ORG_ID")
            .env_remove("OPENAI_PROJECT_ID");
    };
    let sdk_dir = root.join("tests/openai-sdk");
    let mut python = Command::new("python3");
    python
        .args(["-m", "unittest", "-v", "test_openai_sdk"])
        .current_dir(sdk_dir.join("python"))
        .env("PYTHONPATH", python_sdk_dir(&root))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    sdk_env(&mut python);
    let mut node = Command::new("node");
    node.args(["--test", "openai_sdk.test.mjs"])
        .current_dir(sdk_dir.join("node"));
    sdk_env(&mut node);

    // One after the other: both share the organization's small queue allowance.
    let failures: Vec<String> = [
        run_suite("the Python SDK tests", &mut python, 18, unittest_count),
        run_suite("the Node SDK tests", &mut node, 8, node_test_count),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    drop(server);
    if !failures.is_empty() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "{}\n--- starfire serve (last lines)\n{tail}",
            failures.join("\n\n")
        );
    }
}

#[test]
fn pins_and_test_counts_are_read_from_their_texts() {
    let text = "# comment\nopenai==3.57.0\nanyio==4.16.0\n";
    assert_eq!(pinned_python(text, "openai").as_deref(), Some("3.57.0"));
    assert_eq!(pinned_python(text, "httpx"), None);
    let unittest = "test_a (m.T.test_a) ... ok\n\n------\nRan 12 tests in 9.1s\n\nOK\n";
    assert_eq!(unittest_count(unittest), Some(12));
    assert_eq!(unittest_count("Ran no tests"), None);
    assert_eq!(
        node_test_count("# tests 8\n# suites 0\n# pass 7\n# fail 1\n"),
        Some(7)
    );
    assert_eq!(node_test_count("# tests 0\n"), None);
}
