//! `/v1/organization/projects/{id}/api_keys`, and authentication by project key.

use serde_json::json;
use sqlx::Row;

use crate::support::TestApp;

on_both_backends!(
    a_key_works_when_created_and_stops_when_revoked,
    an_expired_key_is_refused,
    the_database_holds_only_the_hash,
    keys_are_accepted_in_all_three_headers,
    listing_shows_metadata_never_the_secret,
    roles_scopes_and_tenants_are_enforced,
    bad_input_names_the_field,
    archiving_a_project_turns_its_keys_off,
);

/// A project key with the admin scope reads its project (200); an inference key is known but
/// not allowed (403); both are unknown (401) after revocation.
async fn a_key_works_when_created_and_stops_when_revoked(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let project_path = format!("/v1/organization/projects/{project}");
    let (admin_id, admin_value) = app.create_key(&owner.access, &project, &["admin"]).await;
    let (inf_id, inf_value) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.get(&project_path, Some(&admin_value)).await.expect(200);
    app.get(&project_path, Some(&inf_value))
        .await
        .expect_error(403, None);

    let deleted = app
        .delete(
            &format!("/v1/organization/projects/{project}/api_keys/{inf_id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(deleted["object"], "organization.project.api_key.deleted");
    assert_eq!(deleted["deleted"], true);
    app.get(&project_path, Some(&inf_value))
        .await
        .expect_error(401, None);

    // A project-admin key can revoke keys of its project, itself included.
    app.delete(
        &format!("/v1/organization/projects/{project}/api_keys/{admin_id}"),
        Some(&admin_value),
    )
    .await
    .expect(200);
    let err = app
        .get(&project_path, Some(&admin_value))
        .await
        .expect_error(401, None);
    assert_eq!(err["type"], "authentication_error");
    app.get(
        &format!("/v1/organization/projects/{project}/api_keys/{admin_id}"),
        Some(&owner.access),
    )
    .await
    .expect_error(404, None);
}

async fn an_expired_key_is_refused(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let in_an_hour = gateway::store::now_ms() / 1000 + 3600;
    let created = app
        .post(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(&owner.access),
            json!({"name": "short", "scopes": ["admin"], "expires_at": in_an_hour}),
        )
        .await
        .expect(201);
    assert_eq!(created["expires_at"], in_an_hour);
    let key = created["value"].as_str().unwrap();
    let path = format!("/v1/organization/projects/{project}");
    app.get(&path, Some(key)).await.expect(200);
    // Move its expiry into the past, as time would.
    sqlx::query("UPDATE api_keys SET expires_ms = $1 WHERE id = $2")
        .bind(gateway::store::now_ms() - 1)
        .bind(created["id"].as_str().unwrap())
        .execute(app.state.store.pool())
        .await
        .unwrap();
    app.get(&path, Some(key)).await.expect_error(401, None);
}

async fn the_database_holds_only_the_hash(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (id, value) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    assert!(value.starts_with("sf-") && !value.starts_with("sf-admin-"));
    let secret = &value[3..];
    assert!(secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    let (_, admin_value) = app.create_admin_key(&owner.access).await;
    assert!(admin_value.starts_with("sf-admin-"));
    assert!(admin_value.len() >= "sf-admin-".len() + 32);

    let rows = sqlx::query("SELECT * FROM api_keys")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for i in 0..row.len() {
            if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                assert!(!text.contains(secret), "column {i} holds the secret");
                assert!(
                    !text.contains(&admin_value[9..]),
                    "column {i} holds the admin secret"
                );
            }
        }
    }
    let row = sqlx::query("SELECT key_hash, prefix FROM api_keys WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    let hash: String = row.get("key_hash");
    let prefix: String = row.get("prefix");
    assert_eq!(hash, gateway::auth::secret::sha256_hex(&value));
    assert!(value.starts_with(&prefix) && prefix.len() < 12);
}

async fn keys_are_accepted_in_all_three_headers(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app.create_key(&owner.access, &project, &["admin"]).await;
    let path = format!("/v1/organization/projects/{project}");
    for header in ["api-key", "x-api-key"] {
        let req = actix_web::test::TestRequest::get()
            .uri(&path)
            .insert_header((header, key.clone()));
        app.call(req).await.expect(200);
    }
    let req = actix_web::test::TestRequest::get()
        .uri(&path)
        .insert_header(("authorization", format!("bearer {key}")));
    app.call(req).await.expect(200);
    let req = actix_web::test::TestRequest::get()
        .uri(&path)
        .insert_header(("authorization", format!("Basic {key}")));
    app.call(req).await.expect_error(401, None);
}

async fn listing_shows_metadata_never_the_secret(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let created = app
        .post(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(&owner.access),
            json!({"name": "ci", "scopes": ["inference", "usage:read"], "limits": {"rpm": 60, "tpm": 1000}}),
        )
        .await
        .expect(201);
    let value = created["value"].as_str().unwrap();
    assert_eq!(created["object"], "organization.project.api_key");
    assert_eq!(created["scopes"], json!(["inference", "usage:read"]));
    assert_eq!(
        created["limits"],
        json!({"rpm": 60, "tpm": 1000, "concurrency": null})
    );
    assert_eq!(created["owner"]["type"], "user");
    assert_eq!(created["owner"]["id"], owner.user_id);
    assert!(created["last_used_at"].is_null());
    let list = app
        .get(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    let listed = &list["data"][0];
    assert_eq!(listed["id"], created["id"]);
    assert!(listed.get("value").is_none());
    let redacted = listed["redacted_value"].as_str().unwrap();
    assert!(redacted.ends_with("...") && value.starts_with(redacted.trim_end_matches("...")));
    assert!(!list.to_string().contains(&value[3..]));

    // Using the key stamps last_used_at.
    let (_, admin) = app.create_key(&owner.access, &project, &["admin"]).await;
    app.get(
        &format!("/v1/organization/projects/{project}"),
        Some(&admin),
    )
    .await
    .expect(200);
    let list = app
        .get(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    let used = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scopes"] == json!(["admin"]))
        .unwrap();
    assert!(used["last_used_at"].is_i64(), "{used}");
}

async fn roles_scopes_and_tenants_are_enforced(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let keys = format!("/v1/organization/projects/{project}/api_keys");
    app.get(&keys, None).await.expect_error(401, None);

    let dev = app
        .member_with_role(&owner, "dev@example.com", "developer")
        .await;
    let viewer = app
        .member_with_role(&owner, "vic@example.com", "viewer")
        .await;
    app.post(&keys, Some(&dev.access), json!({"name": "dev key"}))
        .await
        .expect(201);
    app.get(&keys, Some(&viewer.access)).await.expect(200);
    app.post(&keys, Some(&viewer.access), json!({"name": "nope"}))
        .await
        .expect_error(403, None);
    let (inf_id, inference) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.post(&keys, Some(&inference), json!({"name": "nope"}))
        .await
        .expect_error(403, None);

    // Another tenant sees neither the project's keys nor a single key.
    let bob = app.signup("bob@example.com").await;
    app.get(&keys, Some(&bob.access))
        .await
        .expect_error(404, None);
    app.post(&keys, Some(&bob.access), json!({"name": "x"}))
        .await
        .expect_error(404, None);
    app.get(&format!("{keys}/{inf_id}"), Some(&bob.access))
        .await
        .expect_error(404, None);
    app.delete(&format!("{keys}/{inf_id}"), Some(&bob.access))
        .await
        .expect_error(404, None);
    // Nor through their own project's path.
    let bob_project = app.default_project(&bob.access).await;
    app.delete(
        &format!("/v1/organization/projects/{bob_project}/api_keys/{inf_id}"),
        Some(&bob.access),
    )
    .await
    .expect_error(404, None);
    // The key still works: nothing above touched it.
    app.get(&format!("{keys}/{inf_id}"), Some(&owner.access))
        .await
        .expect(200);

    // A project-admin key of one project does not see another project of its tenant.
    let other = app
        .post(
            "/v1/organization/projects",
            Some(&owner.access),
            json!({"name": "other"}),
        )
        .await
        .expect(201);
    let other_id = other["id"].as_str().unwrap();
    let (_, project_admin) = app.create_key(&owner.access, &project, &["admin"]).await;
    app.get(
        &format!("/v1/organization/projects/{other_id}/api_keys"),
        Some(&project_admin),
    )
    .await
    .expect_error(404, None);
}

async fn bad_input_names_the_field(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let keys = format!("/v1/organization/projects/{project}/api_keys");
    let t = Some(owner.access.as_str());
    app.post(&keys, t, json!({"name": "k", "expires_at": 1000}))
        .await
        .expect_error(422, Some("expires_at"));
    app.post(&keys, t, json!({"name": "k", "scopes": []}))
        .await
        .expect_error(422, Some("scopes"));
    app.post(&keys, t, json!({"name": "k", "scopes": ["root"]}))
        .await
        .expect_error(400, Some("scopes[0]"));
    app.post(&keys, t, json!({"name": "k", "limits": {"rpm": 0}}))
        .await
        .expect_error(422, Some("limits.rpm"));
    app.post(&keys, t, json!({"name": "k", "limits": {"rpm": "fast"}}))
        .await
        .expect_error(400, Some("limits.rpm"));
    app.post(&keys, t, json!({"scopes": ["inference"]}))
        .await
        .expect_error(400, Some("name"));
}

async fn archiving_a_project_turns_its_keys_off(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app.create_key(&owner.access, &project, &["admin"]).await;
    let path = format!("/v1/organization/projects/{project}");
    app.get(&path, Some(&key)).await.expect(200);
    app.send(
        actix_web::http::Method::POST,
        &format!("{path}/archive"),
        Some(&owner.access),
        None,
    )
    .await
    .expect(200);
    app.get(&path, Some(&key)).await.expect_error(401, None);
    app.post(
        &format!("{path}/api_keys"),
        Some(&owner.access),
        json!({"name": "late"}),
    )
    .await
    .expect_error(409, None);
}
