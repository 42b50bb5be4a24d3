//! `/v1/organization/invites`.

use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    invite_accept_and_list,
    invites_conflict_and_validate,
    another_tenants_invite_is_not_found,
    an_expired_invite_is_refused,
);

async fn invite_accept_and_list(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let created = app
        .post(
            "/v1/organization/invites",
            Some(&owner.access),
            json!({"email": "Dev@Example.com", "role": "developer"}),
        )
        .await
        .expect(201);
    assert_eq!(created["object"], "organization.invite");
    assert_eq!(created["email"], "dev@example.com");
    assert_eq!(created["status"], "pending");
    assert!(created["token"].as_str().unwrap().starts_with("sfi-"));
    let id = created["id"].as_str().unwrap();
    let listed = app
        .get("/v1/organization/invites", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(listed["data"][0]["id"], id);
    assert!(listed["data"][0].get("token").is_none());

    // The invite is for dev@example.com only.
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "eve@example.com", "password": "password123", "invite_token": created["token"]}),
    )
    .await
    .expect_error(422, Some("invite_token"));
    let joined = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "dev@example.com", "password": "password123", "invite_token": created["token"]}),
        )
        .await
        .expect(201);
    assert_eq!(joined["organization"]["id"], owner.tenant_id.as_str());
    assert_eq!(joined["organization"]["role"], "developer");
    let got = app
        .get(
            &format!("/v1/organization/invites/{id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(got["status"], "accepted");
    assert!(got["accepted_at"].is_i64());
    // An accepted invite is spent and cannot be deleted.
    app.delete(
        &format!("/v1/organization/invites/{id}"),
        Some(&owner.access),
    )
    .await
    .expect_error(409, None);
}

async fn invites_conflict_and_validate(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = Some(owner.access.as_str());
    app.post(
        "/v1/organization/invites",
        t,
        json!({"email": "ada@example.com", "role": "viewer"}),
    )
    .await
    .expect_error(409, None);
    let first = app
        .post(
            "/v1/organization/invites",
            t,
            json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await
        .expect(201);
    app.post(
        "/v1/organization/invites",
        t,
        json!({"email": "x@example.com", "role": "admin"}),
    )
    .await
    .expect_error(409, None);
    app.post(
        "/v1/organization/invites",
        t,
        json!({"email": "nope", "role": "viewer"}),
    )
    .await
    .expect_error(422, Some("email"));
    app.post(
        "/v1/organization/invites",
        t,
        json!({"email": "y@example.com"}),
    )
    .await
    .expect_error(400, Some("role"));
    // Deleting a pending invite frees the email and kills the token.
    let id = first["id"].as_str().unwrap();
    app.delete(&format!("/v1/organization/invites/{id}"), t)
        .await
        .expect(200);
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "x@example.com", "password": "password123", "invite_token": first["token"]}),
    )
    .await
    .expect_error(422, Some("invite_token"));
    let viewer = app
        .member_with_role(&owner, "vic@example.com", "viewer")
        .await;
    app.get("/v1/organization/invites", Some(&viewer.access))
        .await
        .expect_error(403, None);
    app.get("/v1/organization/invites", None)
        .await
        .expect_error(401, None);
}

async fn another_tenants_invite_is_not_found(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let invite = app
        .post(
            "/v1/organization/invites",
            Some(&ada.access),
            json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await
        .expect(201);
    let path = format!(
        "/v1/organization/invites/{}",
        invite["id"].as_str().unwrap()
    );
    app.get(&path, Some(&bob.access))
        .await
        .expect_error(404, None);
    app.delete(&path, Some(&bob.access))
        .await
        .expect_error(404, None);
    app.get(&path, Some(&ada.access)).await.expect(200);
}

async fn an_expired_invite_is_refused(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let invite = app
        .post(
            "/v1/organization/invites",
            Some(&owner.access),
            json!({"email": "late@example.com", "role": "viewer"}),
        )
        .await
        .expect(201);
    let id = invite["id"].as_str().unwrap();
    sqlx::query("UPDATE invites SET expires_ms = $1 WHERE id = $2")
        .bind(gateway::store::now_ms() - 1)
        .bind(id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let got = app
        .get(
            &format!("/v1/organization/invites/{id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(got["status"], "expired");
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "late@example.com", "password": "password123", "invite_token": invite["token"]}),
    )
    .await
    .expect_error(422, Some("invite_token"));
    // An expired invite no longer blocks a new one.
    app.post(
        "/v1/organization/invites",
        Some(&owner.access),
        json!({"email": "late@example.com", "role": "viewer"}),
    )
    .await
    .expect(201);
}
