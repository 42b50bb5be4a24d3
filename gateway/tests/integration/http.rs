//! What every response shares: request ids, the error shape, body limits, unknown routes.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    every_response_has_a_request_id,
    oversized_bodies_get_413,
    unknown_routes_get_an_openai_404,
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
    // A known path with a method it does not have is unknown too.
    app.delete("/v1/organization/projects", None)
        .await
        .expect_error(404, None);
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
