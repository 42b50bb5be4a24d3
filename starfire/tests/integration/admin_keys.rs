//! `/v1/organization/admin_api_keys`, and authentication by admin key.

use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    admin_keys_manage_the_organization_until_revoked,
    only_admins_manage_admin_keys,
    another_tenants_admin_key_is_not_found,
);

async fn admin_keys_manage_the_organization_until_revoked(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let created = app
        .post(
            "/v1/organization/admin_api_keys",
            Some(&owner.access),
            json!({"name": "terraform"}),
        )
        .await
        .expect(201);
    assert_eq!(created["object"], "organization.admin_api_key");
    let id = created["id"].as_str().unwrap();
    let key = created["value"].as_str().unwrap();
    assert!(key.starts_with("sf-admin-"));

    // It works at once, across the organization.
    let made = app
        .post(
            "/v1/organization/projects",
            Some(key),
            json!({"name": "by admin key"}),
        )
        .await
        .expect(201);
    let (_, project_key) = app
        .create_key(key, made["id"].as_str().unwrap(), &["inference"])
        .await;
    assert!(project_key.starts_with("sf-"));
    let list = app
        .get("/v1/organization/admin_api_keys", Some(key))
        .await
        .expect(200);
    assert_eq!(list["data"][0]["id"], id);
    assert!(list["data"][0].get("value").is_none());
    assert!(list["data"][0]["last_used_at"].is_i64());
    app.get(
        &format!("/v1/organization/admin_api_keys/{id}"),
        Some(&owner.access),
    )
    .await
    .expect(200);
    // Admin keys are not inference keys and not console sessions.
    app.get("/v1/me", Some(key)).await.expect_error(403, None);

    let deleted = app
        .delete(
            &format!("/v1/organization/admin_api_keys/{id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(deleted["object"], "organization.admin_api_key.deleted");
    app.get("/v1/organization/projects", Some(key))
        .await
        .expect_error(401, None);
    app.get(
        &format!("/v1/organization/admin_api_keys/{id}"),
        Some(&owner.access),
    )
    .await
    .expect_error(404, None);
}

async fn only_admins_manage_admin_keys(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    app.get("/v1/organization/admin_api_keys", None)
        .await
        .expect_error(401, None);
    let dev = app
        .member_with_role(&owner, "dev@example.com", "developer")
        .await;
    app.get("/v1/organization/admin_api_keys", Some(&dev.access))
        .await
        .expect_error(403, None);
    app.post(
        "/v1/organization/admin_api_keys",
        Some(&dev.access),
        json!({"name": "x"}),
    )
    .await
    .expect_error(403, None);
    let project = app.default_project(&owner.access).await;
    let (_, project_admin) = app.create_key(&owner.access, &project, &["admin"]).await;
    app.post(
        "/v1/organization/admin_api_keys",
        Some(&project_admin),
        json!({"name": "escalate"}),
    )
    .await
    .expect_error(403, None);
    let admin = app
        .member_with_role(&owner, "adm@example.com", "admin")
        .await;
    app.post(
        "/v1/organization/admin_api_keys",
        Some(&admin.access),
        json!({"name": "ok"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/organization/admin_api_keys",
        Some(&admin.access),
        json!({"name": ""}),
    )
    .await
    .expect_error(422, Some("name"));
}

async fn another_tenants_admin_key_is_not_found(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let (id, key) = app.create_admin_key(&ada.access).await;
    app.get(
        &format!("/v1/organization/admin_api_keys/{id}"),
        Some(&bob.access),
    )
    .await
    .expect_error(404, None);
    app.delete(
        &format!("/v1/organization/admin_api_keys/{id}"),
        Some(&bob.access),
    )
    .await
    .expect_error(404, None);
    // Ada's admin key sees only Ada's organization.
    let projects = app
        .get("/v1/organization/projects", Some(&key))
        .await
        .expect(200);
    assert_eq!(projects["data"].as_array().unwrap().len(), 1);
    let bob_project = app.default_project(&bob.access).await;
    app.get(
        &format!("/v1/organization/projects/{bob_project}"),
        Some(&key),
    )
    .await
    .expect_error(404, None);
    app.get("/v1/organization/admin_api_keys", Some(&key))
        .await
        .expect(200);
}
