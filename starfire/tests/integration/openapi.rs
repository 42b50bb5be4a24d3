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
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/tokenize",
        "/v1/detokenize",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(operations >= 28, "{operations}");
}

/// Every operation that the document marks as secured answers 401 without a credential and with
/// an unknown key, and 403 to a project key that only has the `inference` scope, or for the
/// inference routes to an admin key (permission is checked before the body is validated).
#[actix_web::test]
async fn every_secured_operation_checks_credentials_and_permissions() {
    let app = TestApp::new(Backend::Sqlite).await;
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, inference) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let (_, admin) = app.create_admin_key(&owner.access).await;
    let unknown = format!("sf-{}", "Z".repeat(40));
    let doc: serde_json::Value = serde_json::from_str(&gateway::openapi_json()).unwrap();
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{project_id}", &project);
        let concrete = concrete
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x_1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
            secured += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == Method::POST).then(|| serde_json::json!({}));
            for token in [None, Some(unknown.as_str())] {
                let resp = app
                    .send(method.clone(), &concrete, token, body.as_ref())
                    .await;
                assert_eq!(
                    resp.status.as_u16(),
                    401,
                    "{method} {path} with {token:?}: {}",
                    resp.body
                );
            }
            // Inference routes are the ones an inference key may call: an admin key may not.
            let is_inference = op["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "Inference"));
            let other = if is_inference { &admin } else { &inference };
            let resp = app
                .send(method.clone(), &concrete, Some(other), body.as_ref())
                .await;
            assert_eq!(resp.status.as_u16(), 403, "{method} {path}: {}", resp.body);
        }
    }
    assert!(secured >= 24, "{secured}");
}
