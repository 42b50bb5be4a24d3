//! `/v1/organization/audit_logs`.

use serde_json::json;

use crate::support::TestApp;

on_both_backends!(actions_are_recorded_newest_first, audit_logs_are_private);

async fn actions_are_recorded_newest_first(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = Some(owner.access.as_str());
    let project = app
        .send(
            actix_web::http::Method::POST,
            "/v1/organization/projects",
            t,
            Some(&json!({"name": "audited"})),
        )
        .await;
    let request_id = project.header("x-request-id");
    let project_id = project.expect(201)["id"].as_str().unwrap().to_owned();
    let (key_id, _) = app
        .create_key(&owner.access, &project_id, &["inference"])
        .await;
    app.delete(
        &format!("/v1/organization/projects/{project_id}/api_keys/{key_id}"),
        t,
    )
    .await
    .expect(200);

    let logs = app.get("/v1/organization/audit_logs", t).await.expect(200);
    let types: Vec<&str> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "api_key.deleted",
            "api_key.created",
            "project.created",
            "organization.created"
        ]
    );
    let created = &logs["data"][2];
    assert_eq!(created["object"], "organization.audit_log");
    assert_eq!(created["actor"]["type"], "user");
    assert_eq!(created["actor"]["id"], owner.user_id);
    assert_eq!(created["target"]["id"], project_id);
    assert_eq!(created["request_id"], request_id);
    assert_eq!(created["ip"], "127.0.0.1");

    let filtered = app
        .get("/v1/organization/audit_logs?type=api_key.created", t)
        .await
        .expect(200);
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["data"][0]["target"]["id"], key_id);
    let page = app
        .get("/v1/organization/audit_logs?limit=3", t)
        .await
        .expect(200);
    assert_eq!(page["has_more"], true);
    let rest = app
        .get(
            &format!(
                "/v1/organization/audit_logs?limit=3&after={}",
                page["last_id"].as_str().unwrap()
            ),
            t,
        )
        .await
        .expect(200);
    assert_eq!(rest["data"][0]["type"], "organization.created");
    assert_eq!(rest["has_more"], false);
}

async fn audit_logs_are_private(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    app.get("/v1/organization/audit_logs", None)
        .await
        .expect_error(401, None);
    let dev = app
        .member_with_role(&ada, "dev@example.com", "developer")
        .await;
    app.get("/v1/organization/audit_logs", Some(&dev.access))
        .await
        .expect_error(403, None);
    let bob_logs = app
        .get("/v1/organization/audit_logs", Some(&bob.access))
        .await
        .expect(200);
    assert!(bob_logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"]["id"] == bob.user_id.as_str()));
    app.get("/v1/organization/audit_logs?limit=500", Some(&ada.access))
        .await
        .expect_error(422, Some("limit"));
}
