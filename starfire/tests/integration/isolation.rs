//! Tenant isolation, walked over the whole API: every route of the OpenAPI document that takes
//! an id is called with another organization's ids and this organization's credentials. The
//! answer must be the one a made-up id gets (so nothing tells that the id exists), never a
//! success and never 403; every list this organization can read holds none of the other's ids;
//! and the other organization's things are unchanged afterwards.

use std::collections::BTreeMap;

use actix_web::http::Method;
use serde_json::{json, Value};

use crate::support::{Resp, TestApp};
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::money::Money;
use gateway::store::now_ms;

on_both_backends!(another_organizations_ids_are_not_found_anywhere);

/// Routes whose ids are not an organization's: the platform operator's (cross-organization by
/// design, with their own credential).
fn operator_route(path: &str) -> bool {
    path.starts_with("/v1/billing/admin/")
}

/// A body each mutating route accepts when the id is the caller's own, so that what comes back
/// for another's id is the lookup's answer, not a validation error.
fn plausible_body(method: &Method, path: &str) -> Option<Value> {
    if *method != Method::POST {
        return None;
    }
    let tail = path.rsplit('/').next().unwrap_or_default();
    Some(match tail {
        "budget" => json!({"limit_micros": 1_000_000}),
        "api_keys" => json!({"name": "intruder", "scopes": ["inference"]}),
        "{deployment_id}" => json!({"replicas": {"min": 1, "max": 1}}),
        "{user_id}" => json!({"role": "owner"}),
        "{key_id}" | "{project_id}" => json!({"name": "taken over"}),
        _ => json!({}),
    })
}

async fn another_organizations_ids_are_not_found_anywhere(app: TestApp) {
    let app = app.with_model();
    // The victim: one of everything that has an id.
    let a = app.signup("victim@example.com").await;
    let a_project = app.default_project(&a.access).await;
    let (a_key_id, a_key) = app.create_key(&a.access, &a_project, &["inference"]).await;
    let a_admin = app
        .post(
            "/v1/organization/admin_api_keys",
            Some(&a.access),
            json!({"name": "victim's admin key"}),
        )
        .await
        .expect(201);
    let a_admin_id = a_admin["id"].as_str().unwrap().to_owned();
    let a_invite = app
        .post(
            "/v1/organization/invites",
            Some(&a.access),
            json!({"email": "newcomer@example.com", "role": "viewer"}),
        )
        .await
        .expect(201);
    let a_invite_id = a_invite["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/organization/projects/{a_project}/budget"),
        Some(&a.access),
        json!({"limit_micros": 5_000_000}),
    )
    .await
    .expect(200);
    let a_deployment = app
        .post(
            "/v1/organization/deployments",
            Some(&a.access),
            json!({"name": "victim-llm", "model": DEFAULT_MODEL_ID}),
        )
        .await
        .expect(201);
    let a_deployment_id = a_deployment["id"].as_str().unwrap().to_owned();
    let store = &app.state.store;
    let a_top_up = store
        .create_top_up(
            &a.tenant_id,
            Money::from_micros(10_000_000),
            "usd",
            &a.user_id,
        )
        .await
        .unwrap();
    let a_invoice = store
        .finalize_invoice(&a.tenant_id, 0, now_ms() - 1)
        .await
        .unwrap()
        .id
        .unwrap();

    // The intruder: an owner of another organization, its admin key and a project key.
    let b = app.signup("intruder@example.com").await;
    let b_project = app.default_project(&b.access).await;
    let (_, b_key) = app
        .create_key(&b.access, &b_project, &["inference", "usage:read"])
        .await;
    let b_admin = app
        .post(
            "/v1/organization/admin_api_keys",
            Some(&b.access),
            json!({"name": "intruder's admin key"}),
        )
        .await
        .expect(201)["value"]
        .as_str()
        .unwrap()
        .to_owned();

    let spec = app.get("/openapi.json", None).await.expect(200);
    let paths = spec["paths"].as_object().unwrap();
    let mut walked = 0;
    for (path, ops) in paths {
        if operator_route(path) {
            continue;
        }
        for method in ["get", "post", "delete"] {
            if ops.get(method).is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if !path.contains('{') {
                continue;
            }
            let ids = |real: bool| -> BTreeMap<&str, String> {
                let pick = |id: &str| {
                    if real {
                        id.to_owned()
                    } else {
                        format!("{}_notARealId0000000000000", id.split('_').next().unwrap())
                    }
                };
                let key_id = if path.starts_with("/v1/organization/admin_api_keys") {
                    pick(&a_admin_id)
                } else {
                    pick(&a_key_id)
                };
                BTreeMap::from([
                    ("{project_id}", pick(&a_project)),
                    ("{key_id}", key_id),
                    ("{invite_id}", pick(&a_invite_id)),
                    ("{deployment_id}", pick(&a_deployment_id)),
                    ("{user_id}", pick(&a.user_id)),
                    ("{invoice_id}", pick(&a_invoice)),
                    ("{top_up_id}", pick(&a_top_up.id)),
                    (
                        "{model}",
                        if real { "victim-llm" } else { "no-such-llm" }.to_owned(),
                    ),
                ])
            };
            let fill = |real: bool| {
                let mut filled = path.clone();
                for (param, id) in ids(real) {
                    filled = filled.replace(param, &id);
                }
                assert!(!filled.contains('{'), "a parameter this test lacks: {path}");
                filled
            };
            let body = plausible_body(&method, path);
            let credentials = if path.starts_with("/v1/models") {
                vec![b_key.as_str()]
            } else {
                vec![b.access.as_str(), b_admin.as_str()]
            };
            for credential in credentials {
                let real = app
                    .send(method.clone(), &fill(true), Some(credential), body.as_ref())
                    .await;
                let fake = app
                    .send(
                        method.clone(),
                        &fill(false),
                        Some(credential),
                        body.as_ref(),
                    )
                    .await;
                let what = format!("{method} {path}");
                check_not_found(&what, &real, &fake);
                walked += 1;
            }
        }
    }
    assert!(walked >= 30, "only {walked} calls: is the spec served?");

    // Every list the intruder can read holds none of the victim's ids.
    let secrets = [
        a_project.as_str(),
        &a_key_id,
        &a_admin_id,
        &a_invite_id,
        &a_deployment_id,
        &a.user_id,
        &a_invoice,
        &a_top_up.id,
        a.tenant_id.as_str(),
        "victim-llm",
        "victim@example.com",
    ];
    for (path, ops) in paths {
        if operator_route(path) || path.contains('{') || ops.get("get").is_none() {
            continue;
        }
        for credential in [b.access.as_str(), b_admin.as_str(), b_key.as_str()] {
            let resp = app.get(path, Some(credential)).await;
            let text = resp.body.to_string();
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "GET {path} showed the other organization's {secret}: {text}"
                );
            }
        }
    }

    // And nothing of the victim's changed.
    let project = app
        .get(
            &format!("/v1/organization/projects/{a_project}"),
            Some(&a.access),
        )
        .await
        .expect(200);
    assert_ne!(project["name"], "taken over");
    assert_eq!(project["status"], "active");
    let key = app
        .get(
            &format!("/v1/organization/projects/{a_project}/api_keys/{a_key_id}"),
            Some(&a.access),
        )
        .await
        .expect(200);
    assert_ne!(key["name"], "taken over");
    app.get("/v1/models", Some(&a_key)).await.expect(200);
    app.get(
        &format!("/v1/organization/admin_api_keys/{a_admin_id}"),
        Some(&a.access),
    )
    .await
    .expect(200);
    app.get(
        &format!("/v1/organization/invites/{a_invite_id}"),
        Some(&a.access),
    )
    .await
    .expect(200);
    let d = app
        .get(
            &format!("/v1/organization/deployments/{a_deployment_id}"),
            Some(&a.access),
        )
        .await
        .expect(200);
    assert_eq!(d["state"], "requested");
    assert_eq!(d["replicas"], json!({"min": 1, "max": 1}));
    let members = app
        .get("/v1/organization/users", Some(&a.access))
        .await
        .expect(200);
    assert_eq!(members["data"].as_array().unwrap().len(), 1);
    let budget = app
        .get(
            &format!("/v1/organization/projects/{a_project}/budget"),
            Some(&a.access),
        )
        .await
        .expect(200);
    assert_eq!(budget["limit_micros"], 5_000_000);
}

/// Another organization's id is not found, exactly as a made-up one: the same status and
/// error code (404), never a success or 403.
#[track_caller]
fn check_not_found(what: &str, real: &Resp, fake: &Resp) {
    let status = real.status.as_u16();
    assert_eq!(status, 404, "{what}: {}", real.body);
    assert_eq!(
        (status, &real.body["error"]["code"]),
        (fake.status.as_u16(), &fake.body["error"]["code"]),
        "{what}: another organization's id answers unlike a made-up one: {} / {}",
        real.body,
        fake.body
    );
}
