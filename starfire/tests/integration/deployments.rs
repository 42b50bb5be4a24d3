//! Private deployments end to end with the `local` driver: real `starfire worker` replicas
//! started by the gateway. An organization requests one, an operator approves it, it becomes
//! ready with 2 replicas; chat through its name works (free tokens: the capacity is what is
//! paid) and never lands on the shared model, nor shared traffic on it; another organization
//! gets 404; scaling 2 → 3 while 16 clients stream fails no request; stopped, its requests get
//! 503 naming the state; it starts again; deleted, its name is gone; the ledger holds the
//! replica-hour charges (with a two-second "hour"), and the history lists every transition.

use std::time::{Duration, Instant};

use gateway::registry::DEFAULT_MODEL_ID;
use gateway::worker::pool::series_sum;
use serde_json::{json, Value};

use crate::rate_limits_e2e::{http_to, Reply};
use crate::support::{Backend, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_starfire");
const OPS: &str = "ops-token-0123456789abcdefghijklmnop";

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 16,
        "temperature": 0,
        "stream": stream,
    })
}

/// Requests a replica has finished (from its `/metrics`).
fn finished(url: &str) -> f64 {
    let addr = url.trim_start_matches("http://");
    let (host, port) = addr.rsplit_once(':').unwrap();
    let reply = http_to(
        host,
        port.parse().unwrap(),
        "GET",
        "/metrics",
        None,
        &Value::Null,
    );
    series_sum(&reply.text, "starfire:request_success_total")
}

/// Waits (without blocking the runtime the gateway runs on) until the deployment is in
/// `state`; returns it.
async fn wait_for(app: &TestApp, token: &str, id: &str, state: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let d = app
            .get(&format!("/v1/organization/deployments/{id}"), Some(token))
            .await
            .expect(200);
        if d["state"] == state {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "deployment never reached {state}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_private_deployment_from_request_to_deletion() {
    let app = TestApp::new(Backend::Sqlite)
        .await
        .with_model()
        .configure(|c| {
            c.billing
                .operator_tokens
                .insert("ops".to_owned(), OPS.to_owned());
            c.deployments.worker_command = Some(BIN.into());
            c.deployments.reconcile_interval_ms = 200;
            c.deployments.billing_period_secs = 2;
            c.deployments.replica_hour_micros = 3_600_000;
            c.deployments.kv_cache_memory = 32 << 20;
            c.deployments.drain_timeout_secs = 30;
        });
    let _driver = gateway::server::start_deployments(&app.state).await;
    let owner = app.signup("dedicated@example.com").await;
    // A paying organization (a free one may run 8 requests at once; this test runs 16).
    app.state
        .store
        .change_plan(&owner.tenant_id, gateway::store::tenants::Plan::PayAsYouGo)
        .await
        .unwrap();
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let other = app.signup("someone-else@example.com").await;
    let other_project = app.default_project(&other.access).await;
    let (_, other_key) = app
        .create_key(&other.access, &other_project, &["inference"])
        .await;

    // Refused requests: a shared model's name, a model that cannot be deployed, bad replicas.
    let bad = |body: Value| async {
        app.post("/v1/organization/deployments", Some(&owner.access), body)
            .await
    };
    bad(json!({"name": DEFAULT_MODEL_ID, "model": DEFAULT_MODEL_ID}))
        .await
        .expect_error(422, Some("name"));
    bad(json!({"name": "x", "model": "no-such-model"}))
        .await
        .expect_error(422, Some("model"));
    bad(json!({"name": "x", "model": DEFAULT_MODEL_ID, "replicas": {"min": 3, "max": 2}}))
        .await
        .expect_error(422, Some("replicas"));
    // A project key cannot request one.
    app.post(
        "/v1/organization/deployments",
        Some(&key),
        json!({"name": "x", "model": DEFAULT_MODEL_ID}),
    )
    .await
    .expect(403);

    let created = app
        .post(
            "/v1/organization/deployments",
            Some(&owner.access),
            json!({"name": "acme-chat", "model": DEFAULT_MODEL_ID,
                   "replicas": {"min": 2, "max": 3}}),
        )
        .await
        .expect(201);
    assert_eq!(created["object"], "deployment");
    assert_eq!(created["state"], "requested");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/organization/deployments/{id}");
    // The same name again is a conflict.
    app.post(
        "/v1/organization/deployments",
        Some(&owner.access),
        json!({"name": "acme-chat", "model": DEFAULT_MODEL_ID}),
    )
    .await
    .expect(409);

    // Waiting for approval: 503 naming the state; another organization: nothing at all.
    let waiting = app
        .post("/v1/chat/completions", Some(&key), chat("acme-chat", false))
        .await
        .expect(503);
    assert_eq!(
        waiting["error"]["code"], "deployment_not_ready",
        "{waiting}"
    );
    assert!(
        waiting["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requested"),
        "{waiting}"
    );
    let foreign = app
        .post(
            "/v1/chat/completions",
            Some(&other_key),
            chat("acme-chat", false),
        )
        .await
        .expect(404);
    assert_eq!(foreign["error"]["code"], "model_not_found", "{foreign}");
    app.get(&path, Some(&other.access)).await.expect(404);

    // The operator sees it waiting and approves it; an organization's credential cannot.
    app.post(
        &format!("/v1/billing/admin/deployments/{id}/approve"),
        Some(&owner.access),
        json!({}),
    )
    .await
    .expect(403);
    let pending = app
        .get("/v1/billing/admin/deployments", Some(OPS))
        .await
        .expect(200);
    assert!(
        pending["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == id.as_str() && d["organization_id"] == owner.tenant_id.as_str()),
        "{pending}"
    );
    let approved = app
        .post(
            &format!("/v1/billing/admin/deployments/{id}/approve"),
            Some(OPS),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(approved["state"], "provisioning");
    app.post(
        &format!("/v1/billing/admin/deployments/{id}/approve"),
        Some(OPS),
        json!({}),
    )
    .await
    .expect(409);

    let ready = wait_for(&app, &owner.access, &id, "ready", 120).await;
    assert_eq!(ready["ready_replicas"], 2, "{ready}");
    let stored = app
        .state
        .store
        .deployment(&owner.tenant_id, &id)
        .await
        .unwrap();
    assert_eq!(stored.endpoints.len(), 2);

    // Its name serves the organization, on its own replicas, with its tokens free.
    let listed = app.get("/v1/models", Some(&key)).await.expect(200);
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "acme-chat"),
        "{listed}"
    );
    let before: f64 = stored.endpoints.iter().map(|u| finished(u)).sum();
    let answer = app
        .post("/v1/chat/completions", Some(&key), chat("acme-chat", false))
        .await
        .expect(200);
    assert_eq!(answer["model"], "acme-chat");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let event =
        crate::metering::final_event(&app, &owner.tenant_id, answer["id"].as_str().unwrap()).await;
    assert_eq!(event.model, "acme-chat");
    assert_eq!(
        event.cost.micros(),
        0,
        "a deployment's tokens are not charged again"
    );
    let after: f64 = stored.endpoints.iter().map(|u| finished(u)).sum();
    assert_eq!(
        after,
        before + 1.0,
        "the request ran on the deployment's replicas"
    );
    // Shared traffic of the same organization stays on the shared model.
    app.post(
        "/v1/chat/completions",
        Some(&key),
        chat(DEFAULT_MODEL_ID, false),
    )
    .await
    .expect(200);
    let shared_after: f64 = stored.endpoints.iter().map(|u| finished(u)).sum();
    assert_eq!(
        shared_after, after,
        "shared traffic landed on a deployment replica"
    );
    let foreign = app
        .post(
            "/v1/chat/completions",
            Some(&other_key),
            chat("acme-chat", false),
        )
        .await
        .expect(404);
    assert_eq!(foreign["error"]["code"], "model_not_found");

    // Scale 2 → 3 while 16 clients stream through a live server: no request fails.
    let server = app.serve();
    let port = server.port;
    let clients: Vec<std::thread::JoinHandle<Reply>> = (0..16)
        .map(|_| {
            let key = key.clone();
            std::thread::spawn(move || {
                let mut body = chat("acme-chat", true);
                body["max_tokens"] = json!(48);
                http_to(
                    "127.0.0.1",
                    port,
                    "POST",
                    "/v1/chat/completions",
                    Some(&key),
                    &body,
                )
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scaling = app
        .post(
            &path,
            Some(&owner.access),
            json!({"replicas": {"min": 3, "max": 3}}),
        )
        .await
        .expect(200);
    assert_eq!(scaling["state"], "scaling", "{scaling}");
    let scaled = wait_for(&app, &owner.access, &id, "ready", 120).await;
    assert_eq!(scaled["ready_replicas"], 3, "{scaled}");
    while !clients.iter().all(|c| c.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for client in clients {
        let reply = client.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply.text.contains("data: [DONE]"), "{}", reply.text);
        assert!(!reply.text.contains("\"error\""), "{}", reply.text);
    }
    // More than `max_replicas` is refused.
    app.post(
        &path,
        Some(&owner.access),
        json!({"replicas": {"min": 9, "max": 9}}),
    )
    .await
    .expect_error(422, Some("replicas"));

    // Stopped: requests get 503 naming the state; stopping twice is a conflict.
    let stopping = app
        .post(&format!("{path}/stop"), Some(&owner.access), json!({}))
        .await
        .expect(200);
    assert_eq!(stopping["state"], "stopping");
    wait_for(&app, &owner.access, &id, "stopped", 60).await;
    let refused = app
        .post("/v1/chat/completions", Some(&key), chat("acme-chat", false))
        .await
        .expect(503);
    assert_eq!(refused["error"]["code"], "deployment_not_ready");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{refused}"
    );
    let again = app
        .post(&format!("{path}/stop"), Some(&owner.access), json!({}))
        .await
        .expect(409);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{again}"
    );

    // Started again, it serves again.
    app.post(&format!("{path}/start"), Some(&owner.access), json!({}))
        .await
        .expect(200);
    wait_for(&app, &owner.access, &id, "ready", 120).await;
    app.post("/v1/chat/completions", Some(&key), chat("acme-chat", false))
        .await
        .expect(200);

    // Deleted: the name is gone, the history and the charges stay.
    let deleting = app.delete(&path, Some(&owner.access)).await.expect(200);
    assert_eq!(deleting["state"], "deleting");
    wait_for(&app, &owner.access, &id, "deleted", 60).await;
    let gone = app
        .post("/v1/chat/completions", Some(&key), chat("acme-chat", false))
        .await
        .expect(404);
    assert_eq!(gone["error"]["code"], "model_not_found");
    let listed = app
        .get("/v1/organization/deployments", Some(&owner.access))
        .await
        .expect(200);
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
    let with_deleted = app
        .get(
            "/v1/organization/deployments?include_deleted=true",
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(with_deleted["data"][0]["id"], id.as_str());

    let events = app
        .get(&format!("{path}/events"), Some(&owner.access))
        .await
        .expect(200);
    let states: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "requested",
            "provisioning",
            "ready",
            "scaling",
            "ready",
            "stopping",
            "stopped",
            "provisioning",
            "ready",
            "deleting",
            "deleted"
        ],
        "{events}"
    );
    assert_eq!(events["data"][1]["actor"], "operator:ops");

    // Reserved capacity: every charge is replicas × its length × $3.60/h, and the prepaid
    // ledger holds each as a debit; the balance is still the ledger's sum.
    let charges = app
        .state
        .store
        .deployment_charges(&owner.tenant_id, &id)
        .await
        .unwrap();
    assert!(charges.len() >= 3, "{charges:?}");
    for c in &charges {
        let expected = (c.replicas * (c.period_end_ms - c.period_start_ms) * 3_600_000 + 1_800_000)
            / 3_600_000;
        assert_eq!(c.amount.micros(), expected, "{c:?}");
        assert!(c.period_end_ms - c.period_start_ms <= 2_000, "{c:?}");
    }
    assert!(charges.iter().any(|c| c.replicas == 3), "{charges:?}");
    let ledger = app
        .state
        .store
        .credit_ledger(&owner.tenant_id)
        .await
        .unwrap();
    let debited: i64 = ledger
        .iter()
        .filter(|e| e.kind == "deployment")
        .map(|e| e.amount.micros())
        .sum();
    let paid: i64 = charges.iter().map(|c| c.paid.micros()).sum();
    assert!(paid > 0);
    assert_eq!(debited, -paid);
    let balance = app
        .state
        .store
        .credit_balance(&owner.tenant_id)
        .await
        .unwrap()
        .unwrap();
    let sum: i64 = ledger.iter().map(|e| e.amount.micros()).sum();
    assert_eq!(balance.balance.micros(), sum);
    drop(server);
}

on_both_backends!(requests_are_kept_apart_rejected_with_a_reason_and_charged_once,);

/// Without running replicas: the lifecycle's refusals, the operator's rejection, another
/// organization's view, and charges (once per period, paid from prepaid credits) on both
/// databases.
async fn requests_are_kept_apart_rejected_with_a_reason_and_charged_once(app: TestApp) {
    let app = app.configure(|c| {
        c.billing
            .operator_tokens
            .insert("ops".to_owned(), OPS.to_owned());
        c.deployments.max_per_organization = 1;
    });
    let owner = app.signup("owner@example.com").await;
    let other = app.signup("other@example.com").await;
    let (_, admin_key) = app.create_admin_key(&owner.access).await;
    let created = app
        .post(
            "/v1/organization/deployments",
            Some(&admin_key),
            json!({"name": "team.chat_1", "model": DEFAULT_MODEL_ID, "overflow": "shared",
                   "max_model_len": 512, "kv_cache_memory": 8388608}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["replicas"], json!({"min": 1, "max": 1}));
    // One per organization here: a second is refused.
    let full = app
        .post(
            "/v1/organization/deployments",
            Some(&admin_key),
            json!({"name": "another", "model": DEFAULT_MODEL_ID}),
        )
        .await
        .expect(409);
    assert!(
        full["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the most it may have"),
        "{full}"
    );
    assert_eq!(created["hardware"], "cpu");
    // Another organization may use the same name; it sees nothing of this one.
    app.post(
        "/v1/organization/deployments",
        Some(&other.access),
        json!({"name": "team.chat_1", "model": DEFAULT_MODEL_ID}),
    )
    .await
    .expect(201);
    let path = format!("/v1/organization/deployments/{id}");
    app.get(&path, Some(&other.access)).await.expect(404);
    app.get(&format!("{path}/events"), Some(&other.access))
        .await
        .expect(404);
    app.post(&format!("{path}/stop"), Some(&other.access), json!({}))
        .await
        .expect(404);
    let theirs = app
        .get("/v1/organization/deployments", Some(&other.access))
        .await
        .expect(200);
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);
    assert_ne!(theirs["data"][0]["id"], id.as_str());

    // Not running yet: it cannot be stopped or started.
    app.post(&format!("{path}/stop"), Some(&admin_key), json!({}))
        .await
        .expect(409);
    app.post(&format!("{path}/start"), Some(&admin_key), json!({}))
        .await
        .expect(409);
    // Its replicas can still change before approval.
    let changed = app
        .post(
            &path,
            Some(&admin_key),
            json!({"replicas": {"min": 2, "max": 4}}),
        )
        .await
        .expect(200);
    assert_eq!(changed["state"], "requested");
    assert_eq!(changed["replicas"], json!({"min": 2, "max": 4}));
    app.post(&path, Some(&admin_key), json!({"replicas": {"min": 1}}))
        .await
        .expect(400);

    let rejected = app
        .post(
            &format!("/v1/billing/admin/deployments/{id}/reject"),
            Some(OPS),
            json!({"reason": "no capacity in this region"}),
        )
        .await
        .expect(200);
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["status_message"], "no capacity in this region");
    app.post(
        &format!("/v1/billing/admin/deployments/{id}/approve"),
        Some(OPS),
        json!({}),
    )
    .await
    .expect(409);
    app.post(
        "/v1/billing/admin/deployments/dep_nope/approve",
        Some(OPS),
        json!({}),
    )
    .await
    .expect(404);
    let audit = app
        .get("/v1/organization/audit_logs", Some(&owner.access))
        .await
        .expect(200);
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().or(e["action"].as_str()).unwrap_or(""))
        .collect();
    assert!(actions.contains(&"deployment.created"), "{audit}");
    assert!(actions.contains(&"deployment.rejected"), "{audit}");

    // Charges: once per period whoever charges, paid from the prepaid balance.
    let store = &app.state.store;
    let d = store.deployment(&owner.tenant_id, &id).await.unwrap();
    // The free grant at sign-up opened its prepaid account.
    let before = store
        .credit_balance(&owner.tenant_id)
        .await
        .unwrap()
        .unwrap();
    let charge = gateway::store::deployments::NewCharge {
        deployment: &d,
        period_start_ms: 0,
        period_end_ms: 3_600_000,
        replicas: 2,
        micros_per_replica_hour: 10_000,
        price_id: None,
    };
    let first = store.charge_deployment(&charge).await.unwrap();
    assert!(matches!(
        first,
        gateway::store::deployments::Charged::Charged(ref c) if c.amount.micros() == 20_000 && !c.unpaid()
    ));
    let again = store.charge_deployment(&charge).await.unwrap();
    assert!(matches!(
        again,
        gateway::store::deployments::Charged::Duplicate
    ));
    let balance = store
        .credit_balance(&owner.tenant_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(balance.balance.micros(), before.balance.micros() - 20_000);
    // The invoice of that period shows it as a line of its own, paid from credits.
    let invoice = store
        .draft_invoice(&owner.tenant_id, 0, 3_600_000)
        .await
        .unwrap();
    let line = invoice
        .lines
        .iter()
        .find(|l| l.model == "team.chat_1")
        .expect("a capacity line");
    assert_eq!(line.amount.micros(), 20_000);
    assert_eq!(
        line.description.as_deref(),
        Some("Reserved capacity of deployment 'team.chat_1': 2.000 replica-hours")
    );
    assert_eq!(invoice.credits_applied.micros(), 20_000);
    assert_eq!(invoice.amount_due.micros(), 0);
    let due = store.tenants_to_invoice(0, 3_600_000).await.unwrap();
    assert!(due.contains(&owner.tenant_id), "{due:?}");

    // The capacity catalog: the configured price since the beginning, an operator's change
    // from a future time on; organizations read it, only operators write it.
    let listed = app
        .get("/v1/billing/capacity_prices", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(listed["data"][0]["hardware"], "cpu");
    assert_eq!(listed["data"][0]["micros_per_replica_hour"], 500_000);
    assert_eq!(listed["data"][0]["effective_at"], 0);
    let later = (gateway::store::now_ms() / 1000) + 3600;
    let added = app
        .post(
            "/v1/billing/admin/capacity_prices",
            Some(OPS),
            json!({"hardware": "cpu", "micros_per_replica_hour": 750_000, "effective_at": later}),
        )
        .await
        .expect(201);
    assert_eq!(added["created_by"], "operator:ops");
    app.post(
        "/v1/billing/admin/capacity_prices",
        Some(OPS),
        json!({"hardware": "cpu", "micros_per_replica_hour": 1, "effective_at": 10}),
    )
    .await
    .expect_error(422, Some("effective_at"));
    app.post(
        "/v1/billing/admin/capacity_prices",
        Some(&admin_key),
        json!({"hardware": "cpu", "micros_per_replica_hour": 1}),
    )
    .await
    .expect(403);
    let listed = app
        .get("/v1/billing/capacity_prices", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["data"][1]["effective_at"], later);

    // Deleting (no driver runs here to finish it); a second delete is a conflict.
    let deleting = app.delete(&path, Some(&admin_key)).await.expect(200);
    assert_eq!(deleting["state"], "deleting");
    app.delete(&path, Some(&admin_key)).await.expect(409);
}
