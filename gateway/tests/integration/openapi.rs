//! The OpenAPI document: served, committed without drift, and matching the router.

use actix_web::http::Method;

use crate::support::{Backend, TestApp};

#[test]
fn committed_openapi_json_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .expect("openapi/openapi.json is committed");
    let generated = gateway::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `starfire openapi > openapi/openapi.json`"
    );
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_and_served() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = app.get("/openapi.json", None).await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(&gateway::openapi_json()).unwrap()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for schema in [
        "ErrorBody",
        "ProjectObject",
        "ApiKeyObject",
        "CreatedApiKey",
        "UserObject",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

/// Every documented operation is routed (none answers "Unknown request URL"), and the issue's
/// paths are all documented.
#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc: serde_json::Value = serde_json::from_str(&gateway::openapi_json()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x_1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = app.send(method.clone(), &concrete, None, None).await;
            let message = resp.body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("Unknown request URL"),
                "{method} {path} is documented but not routed"
            );
            operations += 1;
        }
    }
    for path in [
        "/v1/organization/projects",
        "/v1/organization/projects/{project_id}",
        "/v1/organization/projects/{project_id}/archive",
        "/v1/organization/projects/{project_id}/api_keys",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}",
        "/v1/organization/admin_api_keys",
        "/v1/organization/admin_api_keys/{key_id}",
        "/v1/organization/users",
        "/v1/organization/users/{user_id}",
        "/v1/organization/invites",
        "/v1/organization/invites/{invite_id}",
        "/v1/organization/audit_logs",
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/me",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(operations >= 28, "{operations}");
}
