//! `Idempotency-Key` on the POSTs that create things.

use actix_web::test;
use gateway::store::TenantId;
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::support::{Resp, TestApp};

on_both_backends!(
    a_retried_key_creation_returns_the_first_key,
    the_same_key_with_another_request_is_refused,
    keys_belong_to_their_principal,
    a_failed_request_releases_the_key,
    a_malformed_key_is_refused,
    stored_responses_hide_the_secret,
    every_create_route_honours_the_key,
    unfinished_reservations_block_then_go_stale,
);

async fn post_with_key(app: &TestApp, path: &str, token: &str, key: &str, body: Value) -> Resp {
    let req = test::TestRequest::post()
        .uri(path)
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("idempotency-key", key))
        .set_json(&body);
    app.call(req).await
}

async fn key_ids(app: &TestApp, token: &str, project: &str) -> Vec<String> {
    let list = app
        .get(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(token),
        )
        .await
        .expect(200);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_retried_key_creation_returns_the_first_key(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let path = format!("/v1/organization/projects/{project}/api_keys");
    let body = json!({"name": "ci"});
    let first = post_with_key(&app, &path, &owner.access, "retry-1", body.clone()).await;
    assert_eq!(first.header("idempotent-replayed"), "");
    let first = first.expect(201);
    let again = post_with_key(&app, &path, &owner.access, "retry-1", body).await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    let again = again.expect(201);
    assert_eq!(again, first);
    assert_eq!(
        key_ids(&app, &owner.access, &project).await,
        [first["id"].as_str().unwrap().to_owned()]
    );
    // The replayed secret is the real one: it authenticates (this route then wants a session:
    // 403), where a wrong secret does not (401).
    let value = again["value"].as_str().unwrap();
    let me = app.get("/v1/me", Some(value)).await;
    assert_eq!(me.status.as_u16(), 403, "{}", me.body);
    let wrong = format!("{value}x");
    assert_eq!(app.get("/v1/me", Some(&wrong)).await.status.as_u16(), 401);

    // Another key creates another object.
    let other = post_with_key(&app, &path, &owner.access, "retry-2", json!({"name": "ci"}))
        .await
        .expect(201);
    assert_ne!(other["id"], first["id"]);
}

async fn the_same_key_with_another_request_is_refused(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = &owner.access;
    post_with_key(
        &app,
        "/v1/organization/projects",
        t,
        "k",
        json!({"name": "A"}),
    )
    .await
    .expect(201);
    let err = post_with_key(
        &app,
        "/v1/organization/projects",
        t,
        "k",
        json!({"name": "B"}),
    )
    .await
    .expect_error(422, Some("Idempotency-Key"));
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("different request"));
    // Same key on another route.
    let project = app.default_project(t).await;
    post_with_key(
        &app,
        &format!("/v1/organization/projects/{project}/api_keys"),
        t,
        "k",
        json!({"name": "A"}),
    )
    .await
    .expect_error(422, Some("Idempotency-Key"));
    let list = app
        .get("/v1/organization/projects", Some(t))
        .await
        .expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2); // default + A
}

async fn keys_belong_to_their_principal(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let body = json!({"name": "Same"});
    let a = post_with_key(
        &app,
        "/v1/organization/projects",
        &ada.access,
        "shared",
        body.clone(),
    )
    .await
    .expect(201);
    let b = post_with_key(
        &app,
        "/v1/organization/projects",
        &bob.access,
        "shared",
        body.clone(),
    )
    .await
    .expect(201);
    assert_ne!(a["id"], b["id"]);
    // Bob's replay is his own project, never Ada's.
    let b2 = post_with_key(
        &app,
        "/v1/organization/projects",
        &bob.access,
        "shared",
        body,
    )
    .await
    .expect(201);
    assert_eq!(b2["id"], b["id"]);
}

async fn a_failed_request_releases_the_key(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = &owner.access;
    post_with_key(
        &app,
        "/v1/organization/projects",
        t,
        "k",
        json!({"name": ""}),
    )
    .await
    .expect_error(422, Some("name"));
    // The failure was not stored: the key is free for the corrected request.
    let made = post_with_key(
        &app,
        "/v1/organization/projects",
        t,
        "k",
        json!({"name": "Ok"}),
    )
    .await
    .expect(201);
    assert_eq!(made["name"], "Ok");
}

async fn a_malformed_key_is_refused(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = &owner.access;
    for bad in ["has space".to_owned(), "x".repeat(256)] {
        post_with_key(
            &app,
            "/v1/organization/projects",
            t,
            &bad,
            json!({"name": "P"}),
        )
        .await
        .expect_error(400, Some("Idempotency-Key"));
    }
    let list = app
        .get("/v1/organization/projects", Some(t))
        .await
        .expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn stored_responses_hide_the_secret(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let path = format!("/v1/organization/projects/{project}/api_keys");
    let created = post_with_key(
        &app,
        &path,
        &owner.access,
        "secret-key-1",
        json!({"name": "x"}),
    )
    .await
    .expect(201);
    let value = created["value"].as_str().unwrap();
    let rows = sqlx::query("SELECT key_hash, response, status FROM idempotency_keys")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let key_hash: String = rows[0].try_get("key_hash").unwrap();
    let response: String = rows[0].try_get("response").unwrap();
    let status: i64 = rows[0].try_get("status").unwrap();
    assert_eq!(status, 201);
    assert_ne!(key_hash, "secret-key-1");
    assert!(!response.contains(value));
    assert!(!response.contains("organization.project.api_key"));
}

async fn every_create_route_honours_the_key(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = &owner.access;
    for (path, body) in [
        ("/v1/organization/admin_api_keys", json!({"name": "adm"})),
        (
            "/v1/organization/invites",
            json!({"email": "eve@example.com", "role": "viewer"}),
        ),
        (
            "/v1/organization/deployments",
            json!({"name": "dedicated", "model": gateway::registry::DEFAULT_MODEL_ID}),
        ),
    ] {
        // One key per request: reusing a key on another route would be refused.
        let key = format!("once{path}").replace('/', "-");
        let first = post_with_key(&app, path, t, &key, body.clone())
            .await
            .expect(201);
        let again = post_with_key(&app, path, t, &key, body).await.expect(201);
        assert_eq!(first["id"], again["id"], "{path}");
    }
}

async fn unfinished_reservations_block_then_go_stale(app: TestApp) {
    use gateway::store::idempotency::Reservation;
    let store = &app.state.store;
    let org_1 = TenantId::from("org_1");
    let reserve = || store.reserve_idempotency_key(&org_1, "api_key:key_1", "kh", "rh", 60_000);
    assert!(matches!(reserve().await.unwrap(), Reservation::Reserved));
    // A second request while the first runs: in progress (the API answers 409).
    match reserve().await.unwrap() {
        Reservation::InProgress { request_hash } => assert_eq!(request_hash, "rh"),
        other => panic!("{other:?}"),
    }
    // Another principal or tenant is not affected.
    assert!(matches!(
        store
            .reserve_idempotency_key(
                &TenantId::from("org_2"),
                "api_key:key_1",
                "kh",
                "rh",
                60_000
            )
            .await
            .unwrap(),
        Reservation::Reserved
    ));
    // A reservation left unfinished for over a minute is abandoned.
    sqlx::query("UPDATE idempotency_keys SET created_ms = created_ms - 120000")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(matches!(reserve().await.unwrap(), Reservation::Reserved));
    store
        .complete_idempotency_key(
            &TenantId::from("org_1"),
            "api_key:key_1",
            "kh",
            201,
            "sealed",
        )
        .await
        .unwrap();
    match reserve().await.unwrap() {
        Reservation::Done {
            status, response, ..
        } => assert_eq!((status, response.as_str()), (201, "sealed")),
        other => panic!("{other:?}"),
    }
    // Expired keys are forgotten.
    sqlx::query("UPDATE idempotency_keys SET expires_ms = 0")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(matches!(reserve().await.unwrap(), Reservation::Reserved));
}
