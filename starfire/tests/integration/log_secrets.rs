//! No secret in the logs: the real `starfire serve`, logging at `debug` for every crate (what an
//! operator turns on to investigate), takes every flow that carries a secret (passwords at
//! signup, login and console sign-in, access and refresh tokens, API and admin keys, WebSocket
//! tickets, invite tokens, the operator token, a Stripe secret key that a top-up uses, a webhook
//! signature, credentials that are wrong or unknown) and not one of them appears in what it
//! wrote.

use std::process::Stdio;

use serde_json::{json, Value};

use crate::e2e::{free_port, Server};
use crate::rate_limits_e2e::{http, wait_until_up};

const PASSWORD: &str = "Password-of-ada-7291";
const WRONG_PASSWORD: &str = "Not-adas-password-5520";
const SESSION_SECRET: &str = "session-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const OPERATOR_TOKEN: &str = "operator-token-zyxwvutsrqponmlkjihgfedcba";
const WRONG_OPERATOR_TOKEN: &str = "operator-token-guess-0000000000000000000";
const STRIPE_SECRET: &str = "sk_test_secretStripeKey4a7c1e9b3d5f";
const WEBHOOK_SECRET: &str = "whsec_secretWebhookSigningKey8e2d6c";
const WORKER_TOKEN: &str = "worker-token-secret-5d1b9f3a7c2e8046";
const UNKNOWN_KEY: &str = "sf-unknownKeyThatDoesNotExist0000000000000000";

#[test]
fn secrets_never_reach_the_logs() {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    let home = tempfile::tempdir().unwrap();
    let log_path = home.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut server = Server(
        crate::e2e::starfire(home.path())
            .env("STARFIRE_LOG", "debug")
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string())
            .env("STARFIRE_SESSION_SECRET", SESSION_SECRET)
            .env("STARFIRE_BILLING_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("STARFIRE_STRIPE_SECRET_KEY", STRIPE_SECRET)
            .env("STARFIRE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            // Nobody listens there: the top-up's call to Stripe fails (and is logged).
            .env("STARFIRE_STRIPE_API_BASE", "http://127.0.0.1:9/")
            .env("STARFIRE_WORKER_TOKEN", WORKER_TOKEN)
            .arg("serve")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&mut server, "127.0.0.1", port, "/healthz", "starfire serve");
    let mut secrets: Vec<String> = [
        PASSWORD,
        WRONG_PASSWORD,
        SESSION_SECRET,
        OPERATOR_TOKEN,
        WRONG_OPERATOR_TOKEN,
        STRIPE_SECRET,
        WEBHOOK_SECRET,
        WORKER_TOKEN,
        UNKNOWN_KEY,
    ]
    .map(str::to_owned)
    .to_vec();
    let call = |method: &str, path: &str, token: Option<&str>, body: Value| {
        http(port, method, path, token, &body)
    };

    // Accounts and sessions.
    let signup = call(
        "POST",
        "/v1/auth/signup",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    );
    assert_eq!(signup.status, 201, "{}", signup.text);
    let refresh = signup.body["refresh_token"].as_str().unwrap().to_owned();
    let access = signup.body["access_token"].as_str().unwrap().to_owned();
    let wrong = call(
        "POST",
        "/v1/auth/login",
        None,
        json!({"email": "ada@example.com", "password": WRONG_PASSWORD}),
    );
    assert_eq!(wrong.status, 401);
    let login = call(
        "POST",
        "/v1/auth/login",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    );
    assert_eq!(login.status, 200, "{}", login.text);
    let rotated = call(
        "POST",
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    for tokens in [&signup.body, &login.body, &rotated.body] {
        secrets.push(tokens["access_token"].as_str().unwrap().to_owned());
        secrets.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    // The used refresh token again (reuse: the family is revoked) and an unknown bearer.
    assert_eq!(
        call(
            "POST",
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh})
        )
        .status,
        401
    );
    assert_eq!(
        call("GET", "/v1/models", Some(UNKNOWN_KEY), Value::Null).status,
        401
    );
    let access = login.body["access_token"]
        .as_str()
        .unwrap_or(&access)
        .to_owned();

    // Keys, invites, tickets, and what they open.
    let admin = call(
        "POST",
        "/v1/organization/admin_api_keys",
        Some(&access),
        json!({"name": "ops"}),
    );
    assert_eq!(admin.status, 201, "{}", admin.text);
    let admin_key = admin.body["value"].as_str().unwrap().to_owned();
    let projects = call(
        "GET",
        "/v1/organization/projects",
        Some(&admin_key),
        Value::Null,
    );
    let project = projects.body["data"][0]["id"].as_str().unwrap().to_owned();
    let key = call(
        "POST",
        &format!("/v1/organization/projects/{project}/api_keys"),
        Some(&admin_key),
        json!({"name": "app", "scopes": ["inference"]}),
    );
    assert_eq!(key.status, 201, "{}", key.text);
    let api_key = key.body["value"].as_str().unwrap().to_owned();
    let invite = call(
        "POST",
        "/v1/organization/invites",
        Some(&admin_key),
        json!({"email": "bob@example.com", "role": "viewer"}),
    );
    assert_eq!(invite.status, 201, "{}", invite.text);
    let ticket = call("POST", "/v1/ws/tickets", Some(&api_key), json!({}));
    // (Used below, after the key's own calls.)
    assert_eq!(ticket.status, 200, "{}", ticket.text);
    secrets.extend([
        admin_key.clone(),
        api_key.clone(),
        invite.body["token"].as_str().unwrap().to_owned(),
        ticket.body["ticket"].as_str().unwrap().to_owned(),
    ]);
    let chat = call(
        "POST",
        "/v1/chat/completions",
        Some(&api_key),
        json!({"model": "smollm2-135m-instruct", "max_tokens": 2,
               "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(chat.status, 200, "{}", chat.text);

    // The ticket opens a chat WebSocket (it travels in the URL's query).
    {
        use std::io::{Read, Write};
        let ticket = ticket.body["ticket"].as_str().unwrap();
        let mut ws = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        ws.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            ws,
            "GET /v1/chat/ws?ticket={ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        ws.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101", "the ticket opens the socket");
    }

    // The operator, the payment provider and its webhook.
    assert_eq!(
        call(
            "GET",
            "/v1/billing/admin/deployments",
            Some(OPERATOR_TOKEN),
            Value::Null
        )
        .status,
        200
    );
    assert_eq!(
        call(
            "GET",
            "/v1/billing/admin/deployments",
            Some(WRONG_OPERATOR_TOKEN),
            Value::Null
        )
        .status,
        401
    );
    let top_up = call(
        "POST",
        "/v1/billing/top_ups",
        Some(&access),
        json!({"amount_micros": 10_000_000}),
    );
    assert_eq!(top_up.status, 503, "Stripe is unreachable: {}", top_up.text);
    let webhook = call(
        "POST",
        "/v1/billing/stripe/webhook",
        None,
        json!({"id": "evt_1", "type": "checkout.session.completed"}),
    );
    assert!(webhook.status >= 400, "{}", webhook.text);

    // The console's sign-in form (the password in a urlencoded body).
    let form = format!("email=ada%40example.com&password={PASSWORD}&csrf=x");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "POST /signin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Cookie: sf_csrf=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);

    drop(server);
    let written = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        written.lines().count() > 20 && written.contains("DEBUG"),
        "the server logged at debug: {written}"
    );
    assert!(
        !written.contains('\u{1b}'),
        "a log written to a file has no terminal colours"
    );
    for secret in &secrets {
        if let Some(line) = written.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a secret reached the log: {line}");
        }
    }
}
