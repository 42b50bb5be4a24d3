//! The OpenAPI contract, checked by a standard API fuzzer: schemathesis (pinned in
//! `tests/schemathesis/requirements.txt`; `scripts/test` installs it under
//! `target/schemathesis`) runs every phase (examples, coverage, fuzzing, stateful links) and
//! every check against a live `starfire serve` with the default model, SQLite, a Stripe webhook
//! secret (so the webhook verifies signatures) and a billing operator token. Every operation is reached with the credential it takes: the
//! owner's admin key, a project API key, a console session (and a second one to sign out), the
//! operator token. Configuration and hooks: `tests/schemathesis/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::e2e::{bootstrap_with, free_port, starfire, with_default_model, Server};
use crate::rate_limits_e2e::http;

const OPERATOR_TOKEN: &str = "contract-test-operator-token-0123456789";
const WEBHOOK_SECRET: &str = "whsec_contract_test_secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_owned()
}

const INSTALL_HINT: &str = "Install it with `scripts/test` (or by hand, from the repository root: \
`python3 -m pip install --target target/schemathesis -r tests/schemathesis/requirements.txt`).";

/// Fails, saying how to install it, unless the pinned schemathesis is installed.
fn require_schemathesis(root: &Path) {
    let pins = std::fs::read_to_string(root.join("tests/schemathesis/requirements.txt")).unwrap();
    let want = pins
        .lines()
        .find_map(|l| l.trim().strip_prefix("schemathesis=="))
        .expect("schemathesis is pinned")
        .trim()
        .to_owned();
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('schemathesis'))",
        ])
        .env("PYTHONPATH", root.join("target/schemathesis"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}). {INSTALL_HINT}"));
    let have = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && have == want,
        "schemathesis {want} is not installed (found {have:?}; {}). {INSTALL_HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A console session's access token for the bootstrap owner.
fn login(port: u16) -> String {
    let reply = http(
        port,
        "POST",
        "/v1/auth/login",
        None,
        &json!({"email": "root@example.com", "password": "correct horse battery"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// Runs schemathesis; its exit status and whole output.
fn schemathesis(root: &Path, env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file",
    ])
    .arg(root.join("tests/schemathesis/schemathesis.toml"))
    .arg("run")
    .arg(root.join("openapi/openapi.json"))
    .args(["--report", "junit", "--report-dir"])
    .arg(root.join("target/schemathesis-report"))
    // A longer or differently seeded run by hand: `STARFIRE_SCHEMATHESIS_ARGS="--seed 7
    // --max-examples 100"`.
    .args(
        std::env::var("STARFIRE_SCHEMATHESIS_ARGS")
            .unwrap_or_default()
            .split_whitespace(),
    )
    .env(
        "PYTHONPATH",
        format!(
            "{}:{}",
            root.join("target/schemathesis").display(),
            root.join("tests/schemathesis").display()
        ),
    )
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env("NO_COLOR", "1")
    // Its cache and reports stay out of the working tree.
    .current_dir(root.join("target"))
    .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("python3 runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_api_keeps_its_openapi_contract() {
    let root = repo_root();
    require_schemathesis(&root);
    let (ok, output, log) = {
        let home = tempfile::tempdir().unwrap();
        let port = free_port();
        let with_env = |cmd: Command| {
            let mut cmd = with_default_model(cmd);
            // No Stripe API key: top-ups answer 409 (payments off), and no request waits on
            // Stripe; the webhook still verifies signatures.
            cmd.env("STARFIRE_BILLING_OPERATOR_TOKEN", OPERATOR_TOKEN)
                .env("STARFIRE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET);
            cmd
        };
        let keys = bootstrap_with(with_env(starfire(home.path())));
        let log_path = home.path().join("serve.log");
        let mut server = Server(
            with_env(starfire(home.path()))
                .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap(),
        );
        crate::e2e::wait_healthy(port, &mut server);

        let session = login(port);
        // A project of its own for the `project_id` the fuzzer is given, so archiving it
        // leaves the API key's project alone.
        let project = http(
            port,
            "POST",
            "/v1/organization/projects",
            Some(&session),
            &json!({"name": "Fuzzed"}),
        );
        assert_eq!(project.status, 201, "{}", project.body);
        // Another organization for the operator's routes (plans, adjustments, refunds).
        let other = http(
            port,
            "POST",
            "/v1/auth/signup",
            None,
            &json!({"email": "other@example.com", "password": "another good password",
                "organization_name": "Other"}),
        );
        assert_eq!(other.status, 201, "{}", other.body);
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        let env = [
            ("STARFIRE_BASE_URL", format!("http://127.0.0.1:{port}")),
            ("STARFIRE_ADMIN_KEY", text(&keys["admin_key"])),
            ("STARFIRE_API_KEY", text(&keys["api_key"])),
            ("STARFIRE_SESSION", session),
            ("STARFIRE_LOGOUT_SESSION", login(port)),
            ("STARFIRE_OPERATOR_TOKEN", OPERATOR_TOKEN.to_owned()),
            ("STARFIRE_PROJECT_ID", text(&project.body["id"])),
            (
                "STARFIRE_OTHER_ORGANIZATION_ID",
                text(&other.body["organization"]["id"]),
            ),
        ];
        let (ok, output) = schemathesis(&root, &env);
        drop(server);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        (ok, output, log)
    };
    println!("{output}");
    if !ok {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "schemathesis found failures (above)\n--- starfire serve (last lines)\n{}",
            tail.join("\n")
        );
    }
    // It really ran: every phase, and no operation left untested.
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(output.contains(phase), "no {phase} phase in the output");
    }
    let generated = output
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse::<usize>().ok())
        .unwrap_or(0);
    assert!(generated >= 1000, "only {generated} test cases generated");
}
