//! What every response shares: request ids, security headers, the error shape, body limits and
//! timeouts, unknown routes.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    every_response_has_a_request_id,
    oversized_bodies_get_413,
    unknown_routes_get_an_openai_404,
    undeclared_methods_get_405_with_allow,
    health_answers_without_credentials,
    non_json_bodies_are_refused,
    deeply_nested_json_is_a_400,
    slow_bodies_get_408_and_lose_their_connection,
);

async fn every_response_has_a_request_id(app: TestApp) {
    let ok = app.get("/healthz", None).await;
    let unauthorized = app.get("/v1/organization/projects", None).await;
    let missing = app.get("/v1/nothing-here", None).await;
    let bad = app.post("/v1/auth/signup", None, json!({})).await;
    let mut ids = Vec::new();
    for resp in [&ok, &unauthorized, &missing, &bad] {
        assert_eq!(resp.header("x-content-type-options"), "nosniff");
        assert_eq!(resp.header("x-frame-options"), "DENY");
        let id = resp.header("x-request-id");
        assert!(id.starts_with("req_"), "{id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "request ids must differ");
    // A well-formed incoming id is kept (so traces join up); a hostile one is replaced.
    let echoed = app
        .call(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", "trace-42")),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), "trace-42");
    let replaced = app
        .call(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", "a b\"<")),
        )
        .await;
    assert!(replaced.header("x-request-id").starts_with("req_"));
}

async fn oversized_bodies_get_413(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    // The test configuration allows 64 KiB.
    let err = app
        .post(
            "/v1/organization/projects",
            Some(&owner.access),
            json!({"name": "x".repeat(100 * 1024)}),
        )
        .await
        .expect_error(413, None);
    assert_eq!(err["code"], "payload_too_large");
    let err = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "a@example.com", "password": "x".repeat(70 * 1024)}),
        )
        .await
        .expect_error(413, None);
    assert_eq!(err["type"], "invalid_request_error");
}

async fn unknown_routes_get_an_openai_404(app: TestApp) {
    let err = app
        .get("/v1/nothing-here", None)
        .await
        .expect_error(404, None);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing-here"));
    // A known path with a method it does not have is not unknown: 405 with `Allow` (see
    // `undeclared_methods_get_405_with_allow`).
    let resp = app.delete("/v1/organization/projects", None).await;
    assert_eq!(resp.header("allow"), "GET, POST");
    resp.expect_error(405, None);
}

async fn health_answers_without_credentials(app: TestApp) {
    let body = app.get("/healthz", None).await.expect(200);
    assert_eq!(body["status"], "ok");
}

async fn non_json_bodies_are_refused(app: TestApp) {
    let req = TestRequest::post()
        .uri("/v1/auth/login")
        .insert_header(("content-type", "text/plain"))
        .set_payload("email=a");
    app.call(req).await.expect_error(400, None);
    let req = TestRequest::post()
        .uri("/v1/auth/login")
        .insert_header(("content-type", "application/json"));
    app.call(req).await.expect_error(400, None);
}

/// A path the API has, asked with a method it does not declare: 405 with `Allow` naming the
/// declared ones (before any credential is looked at), in OpenAI's error shape; the declared
/// methods still work and an unknown path is still 404.
async fn undeclared_methods_get_405_with_allow(app: TestApp) {
    use actix_web::http::Method;
    let cases = [
        (Method::TRACE, "/v1/models", "GET"),
        (Method::DELETE, "/v1/billing/balance", "GET"),
        (Method::PUT, "/v1/organization/projects", "GET, POST"),
        (Method::PATCH, "/v1/chat/completions", "POST"),
        // The console's pages too.
        (Method::DELETE, "/projects", "GET, POST"),
        (Method::PUT, "/billing", "GET"),
        (Method::GET, "/signout", "POST"),
    ];
    for (method, path, allow) in cases {
        let resp = app.send(method.clone(), path, None, None).await;
        assert_eq!(
            resp.header("allow"),
            allow,
            "{method} {path}: {}",
            resp.body
        );
        let err = resp.expect_error(405, None);
        assert_eq!(err["code"], "method_not_allowed");
        assert!(err["message"].as_str().unwrap().contains(allow), "{err}");
    }
    // The declared methods are unaffected: GET and POST on the same path reach their handlers.
    let owner = app.signup("ada@example.com").await;
    app.get("/v1/organization/projects", Some(&owner.access))
        .await
        .expect(200);
    app.post(
        "/v1/organization/projects",
        Some(&owner.access),
        json!({"name": "p"}),
    )
    .await
    .expect(201);
    app.send(Method::TRACE, "/v1/nothing-here", None, None)
        .await
        .expect_error(404, None);
}

/// JSON nested 10,000 deep, in an object a route reads (a message's content, a JSON Schema, a
/// project's name) or at the top, is a 400 naming the nesting, never a crashed thread; the
/// server answers the next request.
async fn deeply_nested_json_is_a_400(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let chat = |rest: String| format!(r#"{{"model":"smollm2-135m-instruct",{rest}}}"#);
    // (route, credential, body, what the 400 says)
    let cases = [
        (
            "/v1/chat/completions",
            &key,
            chat(format!(
                r#""messages":[{{"role":"user","content":{arrays}}}]"#
            )),
            "recursion limit",
        ),
        (
            "/v1/chat/completions",
            &key,
            chat(format!(
                r#""messages":[{{"role":"user","content":"hi"}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{objects}}}}}"#
            )),
            "recursion limit",
        ),
        (
            "/v1/chat/completions",
            &key,
            format!(r#"{{"model":{arrays}}}"#),
            "'model'",
        ),
        (
            "/v1/organization/projects",
            &owner.access,
            format!(r#"{{"name":{objects}}}"#),
            "'name'",
        ),
        (
            "/v1/organization/projects",
            &owner.access,
            objects,
            "unknown field `a`",
        ),
    ];
    for (path, token, body, says) in cases {
        let resp = app
            .call(
                TestRequest::post()
                    .uri(path)
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .insert_header(("content-type", "application/json"))
                    .set_payload(body),
            )
            .await;
        let err = resp.expect_error(400, None);
        assert_eq!(err["code"], "invalid_request", "{path}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{path}: {err}"
        );
    }
    app.get("/v1/organization/projects", Some(&owner.access))
        .await
        .expect(200);
}

/// A client that sends its headers and then its body one byte at a time gets 408 once the body
/// timeout passes and its connection is closed, and the server goes on answering others.
async fn slow_bodies_get_408_and_lose_their_connection(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app.configure(|c| c.body_timeout_secs = 1);
    let live = app.serve();
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", live.port))
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          content-length: 200\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Drip a byte every 100 ms until the server answers and closes (or 10 s pass: a failure).
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still open after 10 s: {}",
            String::from_utf8_lossy(&answer)
        );
        let _ = slow.write_all(b" ").await;
        match tokio::time::timeout(std::time::Duration::from_millis(100), slow.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");

    // Others are served as usual, bodies included.
    let resp = plain_login(live.port).await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

/// A login with a wrong password over a plain socket, at once: the server's answer.
async fn plain_login(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"email":"nobody@example.com","password":"wrong-password"}"#;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST /v1/auth/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}
