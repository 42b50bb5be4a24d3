//! What every response shares: request ids, the error shape, body limits, unknown routes.

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
);

async fn every_response_has_a_request_id(app: TestApp) {
    let ok = app.get("/healthz", None).await;
    let unauthorized = app.get("/v1/organization/projects", None).await;
    let missing = app.get("/v1/nothing-here", None).await;
    let bad = app.post("/v1/auth/signup", None, json!({})).await;
    let mut ids = Vec::new();
    for resp in [&ok, &unauthorized, &missing, &bad] {
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
