//! Stripe, against a local fake Stripe server (`fake_stripe`) and real signed webhook payloads:
//! top-ups through Checkout credited exactly once by the webhook (an organization out of
//! credits is served again right after), the signature checks, meter events for postpaid usage
//! reported once despite lost responses, and invoice payments that suspend and restore a
//! postpaid organization.

use std::time::Duration;

use actix_web::test;
use gateway::billing::webhook::sign;
use gateway::metering::{Money, Prices};
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::now_ms;
use gateway::store::usage::UsageStatus;
use serde_json::{json, Value};

use crate::fake_stripe::{FakeStripe, SECRET_KEY};
use crate::support::{Resp, Session, TestApp};

const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdefghij";
const WEBHOOK_SECRET: &str = "whsec_starfire_test_0123456789";
/// A secret being rotated out: still accepted.
const OLD_WEBHOOK_SECRET: &str = "whsec_starfire_old_0123456789";

/// $100 per 1M tokens either way: a short chat (about 35 tokens, `max_tokens` 5) may cost up
/// to a few thousand micro-dollars.
const PRICE: Prices = Prices {
    input_micros_per_million: 100_000_000,
    cached_input_micros_per_million: 100_000_000,
    output_micros_per_million: 100_000_000,
};

fn with_stripe(app: TestApp, fake: &FakeStripe, grant_micros: i64) -> TestApp {
    let url = fake.url.clone();
    app.configure(|c| {
        c.billing
            .operator_tokens
            .insert("ops".to_owned(), OPERATOR_TOKEN.to_owned());
        c.billing.stripe.secret_key = Some(SECRET_KEY.to_owned());
        c.billing.stripe.api_base = url;
        c.billing.stripe.webhook_secrets =
            vec![WEBHOOK_SECRET.to_owned(), OLD_WEBHOOK_SECRET.to_owned()];
        c.metering.set_price(DEFAULT_MODEL_ID, PRICE);
        c.metering.free_grant = Money::from_micros(grant_micros);
    })
    .with_model()
}

fn chat() -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 5,
        "temperature": 0,
    })
}

async fn post_with_key(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> Resp {
    app.call(
        test::TestRequest::post()
            .uri(path)
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("idempotency-key", key))
            .set_json(body),
    )
    .await
}

/// Delivers `event` to the webhook, signed with `secret` at `t`.
async fn deliver(app: &TestApp, event: &Value, secret: &str, t: i64) -> Resp {
    let body = event.to_string();
    let signature = format!("t={t},v1={}", sign(secret, t, body.as_bytes()));
    deliver_raw(app, body.into_bytes(), Some(signature)).await
}

async fn deliver_raw(app: &TestApp, body: Vec<u8>, signature: Option<String>) -> Resp {
    let mut req = test::TestRequest::post()
        .uri("/v1/billing/stripe/webhook")
        .insert_header(("content-type", "application/json"));
    if let Some(signature) = signature {
        req = req.insert_header(("stripe-signature", signature));
    }
    app.call(req.set_payload(body)).await
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

fn session_completed(event_id: &str, kind: &str, session: &Value) -> Value {
    let mut paid = session.clone();
    paid["payment_status"] = json!("paid");
    paid["status"] = json!("complete");
    json!({
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": now_secs(),
        "livemode": false,
        "data": {"object": paid},
    })
}

async fn balance(app: &TestApp, token: &str) -> Value {
    app.get("/v1/billing/balance", Some(token))
        .await
        .expect(200)
}

/// An organization that has spent its free grant is refused; a top-up opens a Checkout Session
/// (the fake checks the customer and session requests), the webhook credits it exactly once,
/// and the very next request is served.
async fn top_up_through_checkout_restores_service(app: TestApp) {
    let fake = FakeStripe::start();
    let app = with_stripe(app, &fake, 5_000);
    let owner = app.signup("payer@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;

    // The grant pays for one request; the next is refused.
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect(200);
    let refused = app
        .post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect_error(429, None);
    assert_eq!(refused["code"], "insufficient_quota");
    let before = balance(&app, &owner.access).await;
    assert_eq!(before["plan"], "free");
    assert_eq!(before["top_ups_available"], true);

    refused_top_ups(&app, &fake, &owner).await;
    let (top_up_id, session_id) = open_top_up(&app, &fake, &owner).await;

    // Nothing is credited until Stripe says it was paid.
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect_error(429, None);

    let session = fake.state.lock().unwrap().sessions[0].clone();
    let event = session_completed("evt_paid_1", "checkout.session.completed", &session);

    refused_deliveries(&app, &event, &owner, &before).await;

    // The real delivery, signed with the secret being rotated out: credited.
    let applied = deliver(&app, &event, OLD_WEBHOOK_SECRET, now_secs())
        .await
        .expect(200);
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["outcome"], "credited $5.000000");
    // Served again at once.
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect(200);

    redeliveries_change_nothing(&app, &event, &session, &owner).await;

    // The ledger: one top-up entry pointing at the session, by Stripe; the balance adds up.
    let ledger = app
        .get("/v1/billing/ledger?limit=100", Some(&owner.access))
        .await
        .expect(200);
    let entries = ledger["data"].as_array().unwrap();
    let top_ups: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "top_up").collect();
    assert_eq!(top_ups.len(), 1, "{ledger}");
    assert_eq!(top_ups[0]["payment_id"], session_id.as_str());
    assert_eq!(top_ups[0]["actor"], "stripe");
    assert_eq!(top_ups[0]["amount_micros"], 5_000_000);
    let sum: i64 = entries
        .iter()
        .map(|e| e["amount_micros"].as_i64().unwrap())
        .sum();
    let now = balance(&app, &owner.access).await;
    assert_eq!(now["balance_micros"], sum);
    // Paying moved the organization to pay-as-you-go.
    assert_eq!(now["plan"], "pay_as_you_go");

    // The top-up reads as completed; another organization cannot see it.
    let read = app
        .get(
            &format!("/v1/billing/top_ups/{top_up_id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(read["status"], "completed");
    assert_eq!(read["checkout_url"], Value::Null);
    assert_eq!(read["ledger_entry_id"], top_ups[0]["id"]);
    let listed = app
        .get("/v1/billing/top_ups", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let stranger = app.signup("stranger@example.com").await;
    app.get(
        &format!("/v1/billing/top_ups/{top_up_id}"),
        Some(&stranger.access),
    )
    .await
    .expect_error(404, None);
    // A session that names another organization than its top-up's credits nothing.
    let mut forged = session.clone();
    forged["metadata"]["starfire_organization"] = json!(stranger.tenant_id);
    let forged = session_completed("evt_forged", "checkout.session.completed", &forged);
    let forged = deliver(&app, &forged, WEBHOOK_SECRET, now_secs())
        .await
        .expect(200);
    assert!(forged["outcome"].as_str().unwrap().starts_with("ignored"));
    assert_eq!(
        balance(&app, &stranger.access).await["balance_micros"],
        5_000
    );
    // The audit log has the top-up.
    let audit = app
        .get("/v1/organization/audit_logs", Some(&owner.access))
        .await
        .expect(200);
    assert!(audit.to_string().contains("billing.top_up_created"));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// Bad amounts and URLs are refused before Stripe is called; a viewer cannot pay.
async fn refused_top_ups(app: &TestApp, fake: &FakeStripe, owner: &Session) {
    for amount in [0_i64, 1_000_000, 5_000_001, 20_000_000_000] {
        app.post(
            "/v1/billing/top_ups",
            Some(&owner.access),
            json!({"amount_micros": amount}),
        )
        .await
        .expect_error(422, Some("amount_micros"));
    }
    app.post(
        "/v1/billing/top_ups",
        Some(&owner.access),
        json!({"amount_micros": 5_000_000, "success_url": "javascript:alert(1)"}),
    )
    .await
    .expect_error(422, Some("success_url"));
    let viewer = app
        .member_with_role(owner, "viewer@example.com", "viewer")
        .await;
    app.post(
        "/v1/billing/top_ups",
        Some(&viewer.access),
        json!({"amount_micros": 5_000_000}),
    )
    .await
    .expect_error(403, None);
    assert!(fake.requests_to("/v1/checkout/sessions").is_empty());
}

/// A top-up, retried with the same Idempotency-Key: one Checkout Session, the same answer;
/// the customer and session sent to Stripe carry the organization. Returns the top-up's id
/// and its session's.
async fn open_top_up(app: &TestApp, fake: &FakeStripe, owner: &Session) -> (String, String) {
    let body = json!({"amount_micros": 5_000_000, "success_url": "https://console.example/paid"});
    let first = post_with_key(app, "/v1/billing/top_ups", &owner.access, "topup-1", &body)
        .await
        .expect(201);
    let again = post_with_key(app, "/v1/billing/top_ups", &owner.access, "topup-1", &body).await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    let again = again.expect(201);
    assert_eq!(first, again);
    assert_eq!(first["object"], "billing.top_up");
    assert_eq!(first["status"], "open");
    assert_eq!(first["amount_micros"], 5_000_000);
    let top_up_id = first["id"].as_str().unwrap().to_owned();
    let session_id = first["checkout_session_id"].as_str().unwrap().to_owned();
    assert!(first["checkout_url"]
        .as_str()
        .unwrap()
        .ends_with(&session_id));

    let customers = fake.requests_to("/v1/customers");
    assert_eq!(customers.len(), 1, "{customers:?}");
    assert_eq!(
        customers[0].form["metadata[starfire_organization]"],
        owner.tenant_id
    );
    let sessions = fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let sent = &sessions[0].form;
    assert_eq!(sent["line_items[0][price_data][unit_amount]"], "500");
    assert_eq!(sent["customer"], "cus_1");
    assert_eq!(sent["client_reference_id"], top_up_id);
    assert_eq!(sent["metadata[starfire_organization]"], owner.tenant_id);
    assert_eq!(sent["success_url"], "https://console.example/paid");
    assert!(sent["cancel_url"].ends_with("/billing?top_up=cancelled"));
    assert!(sessions[0]
        .idempotency_key
        .as_deref()
        .unwrap()
        .contains(&top_up_id));
    // A second top-up reuses the customer.
    post_with_key(
        app,
        "/v1/billing/top_ups",
        &owner.access,
        "topup-2",
        &json!({"amount_micros": 10_000_000}),
    )
    .await
    .expect(201);
    assert_eq!(fake.requests_to("/v1/customers").len(), 1);
    assert_eq!(fake.requests_to("/v1/checkout/sessions").len(), 2);

    (top_up_id, session_id)
}

/// Deliveries Stripe did not sign as this server expects change nothing: a wrong secret, a
/// stale or future timestamp, a tampered body, no signature, a malformed one.
async fn refused_deliveries(app: &TestApp, event: &Value, owner: &Session, before: &Value) {
    let t = now_secs();
    deliver(app, event, "whsec_someone_else_0123456789", t)
        .await
        .expect_error(400, Some("Stripe-Signature"));
    deliver(app, event, WEBHOOK_SECRET, t - 301)
        .await
        .expect_error(400, Some("Stripe-Signature"));
    deliver(app, event, WEBHOOK_SECRET, t + 301)
        .await
        .expect_error(400, Some("Stripe-Signature"));
    let signed = event.to_string();
    let signature = format!("t={t},v1={}", sign(WEBHOOK_SECRET, t, signed.as_bytes()));
    let tampered = signed.replace("\"amount_total\":500", "\"amount_total\":500000");
    assert_ne!(tampered, signed);
    deliver_raw(app, tampered.into_bytes(), Some(signature.clone()))
        .await
        .expect_error(400, Some("Stripe-Signature"));
    deliver_raw(app, signed.clone().into_bytes(), None)
        .await
        .expect_error(400, Some("Stripe-Signature"));
    deliver_raw(app, signed.clone().into_bytes(), Some("v1=00".into()))
        .await
        .expect_error(400, Some("Stripe-Signature"));
    assert_eq!(
        balance(app, &owner.access).await["balance_micros"],
        before["balance_micros"]
    );
}

/// Redelivered (same event): nothing changes. Another event for the same session (the
/// delayed-payment notification): applied, but the session is credited once.
async fn redeliveries_change_nothing(
    app: &TestApp,
    event: &Value,
    session: &Value,
    owner: &Session,
) {
    let after = balance(app, &owner.access).await;
    let redelivered = deliver(app, event, WEBHOOK_SECRET, now_secs())
        .await
        .expect(200);
    assert_eq!(redelivered["status"], "duplicate");
    let second = session_completed(
        "evt_paid_2",
        "checkout.session.async_payment_succeeded",
        session,
    );
    let second = deliver(app, &second, WEBHOOK_SECRET, now_secs())
        .await
        .expect(200);
    assert_eq!(
        second["outcome"],
        "ignored: the session was credited already"
    );
    assert_eq!(
        balance(app, &owner.access).await["balance_micros"],
        after["balance_micros"]
    );
}

/// An enterprise organization's usage is reported as meter events, once per request, even when
/// Stripe's responses are lost and batches are retried.
async fn postpaid_usage_becomes_meter_events_once(app: TestApp) {
    let fake = FakeStripe::start();
    let app = with_stripe(app, &fake, 0);
    let owner = app.signup("enterprise@example.com").await;
    let tenant = owner.tenant_id.clone();
    // A prepaid balance must be emptied before going postpaid.
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/adjustments"),
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 1_000, "reason": "goodwill"}),
    )
    .await
    .expect(201);
    let plan = |p: &str| json!({ "plan": p });
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/plan"),
        Some(OPERATOR_TOKEN),
        plan("enterprise"),
    )
    .await
    .expect_error(409, None);
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/plan"),
        Some(&owner.access),
        plan("enterprise"),
    )
    .await
    .expect_error(403, None);
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/adjustments"),
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": -1_000, "reason": "moving to an enterprise contract"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/plan"),
        Some(OPERATOR_TOKEN),
        plan("platinum"),
    )
    .await
    .expect_error(422, Some("plan"));
    let changed = app
        .post(
            &format!("/v1/billing/admin/organizations/{tenant}/plan"),
            Some(OPERATOR_TOKEN),
            plan("enterprise"),
        )
        .await
        .expect(200);
    assert_eq!(changed["plan"], "enterprise");
    assert_eq!(changed["previous_plan"], "free");
    assert_eq!(changed["stripe_customer_id"], "cus_1");
    let balance_now = balance(&app, &owner.access).await;
    assert_eq!(balance_now["mode"], "postpaid");
    assert_eq!(balance_now["top_ups_available"], false);
    app.post(
        "/v1/billing/top_ups",
        Some(&owner.access),
        json!({"amount_micros": 5_000_000}),
    )
    .await
    .expect_error(409, None);

    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    for _ in 0..4 {
        app.post("/v1/chat/completions", Some(&key), chat())
            .await
            .expect(200);
    }
    let store = &app.state.store;
    let events = loop {
        let events = store.usage_events(&tenant, 0, i64::MAX).await.unwrap();
        if events.iter().all(|e| e.status != UsageStatus::InProgress) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.cost.micros() > 0));

    // The first two responses are lost after Stripe recorded the events.
    fake.state.lock().unwrap().fail_meter_after_recording = 2;
    let stripe = app.state.stripe.clone().expect("stripe is configured");
    let metrics = app.state.metrics.clone();
    assert_eq!(stripe.report_meter_batch(store, &metrics).await, 2);
    assert_eq!(store.pending_meter_events().await.unwrap(), 2);
    assert_eq!(stripe.report_meter_batch(store, &metrics).await, 2);
    assert_eq!(store.pending_meter_events().await.unwrap(), 0);
    // Nothing is left to send.
    let sent = fake.requests_to("/v1/billing/meter_events").len();
    assert_eq!(sent, 6);
    assert_eq!(stripe.report_meter_batch(store, &metrics).await, 0);
    assert_eq!(fake.requests_to("/v1/billing/meter_events").len(), sent);

    // One event per request, its value the request's cost, for the customer; retries used the
    // same idempotency key.
    let recorded = fake.state.lock().unwrap().meter_events.clone();
    assert_eq!(recorded.len(), 4);
    for e in &events {
        let (value, customer, _) = &recorded[&e.request_id];
        assert_eq!(*value, e.cost.micros());
        assert_eq!(customer, "cus_1");
        let keys: std::collections::HashSet<_> = fake
            .requests_to("/v1/billing/meter_events")
            .into_iter()
            .filter(|r| r.form["identifier"] == e.request_id)
            .map(|r| r.idempotency_key)
            .collect();
        assert_eq!(keys.len(), 1);
    }
    for r in fake.requests_to("/v1/billing/meter_events") {
        assert_eq!(r.form["event_name"], "starfire_usage");
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// `invoice.payment_failed` suspends a postpaid organization and `invoice.paid` restores it; an
/// older event delivered late changes nothing; an invoice of an unknown customer is ignored.
async fn invoice_payments_suspend_and_restore_postpaid(app: TestApp) {
    let fake = FakeStripe::start();
    let app = with_stripe(app, &fake, 0);
    let owner = app.signup("invoiced@example.com").await;
    let tenant = owner.tenant_id.clone();
    app.post(
        &format!("/v1/billing/admin/organizations/{tenant}/plan"),
        Some(OPERATOR_TOKEN),
        json!({"plan": "enterprise"}),
    )
    .await
    .expect(200);
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect(200);

    let invoice = |id: &str, kind: &str, created: i64, customer: &str| {
        json!({
            "id": id, "object": "event", "type": kind, "created": created,
            "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer,
                "status": if kind == "invoice.paid" { "paid" } else { "open" },
                "amount_due": 1234, "amount_paid": if kind == "invoice.paid" { 1234 } else { 0 },
                "currency": "usd", "hosted_invoice_url": "https://invoice.stripe.test/in_1"}},
        })
    };
    let t = now_secs();
    let failed = deliver(
        &app,
        &invoice("evt_f", "invoice.payment_failed", t - 10, "cus_1"),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert_eq!(failed["outcome"], "billing_status past_due");
    assert_eq!(
        balance(&app, &owner.access).await["billing_status"],
        "past_due"
    );
    let refused = app
        .post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect_error(429, None);
    assert_eq!(refused["code"], "insufficient_quota");
    assert!(refused["message"].as_str().unwrap().contains("invoice"));

    // A paid event older than the failure, delivered late: the failure stands.
    let late = deliver(
        &app,
        &invoice("evt_old", "invoice.paid", t - 20, "cus_1"),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert!(late["outcome"].as_str().unwrap().starts_with("ignored"));
    assert_eq!(
        balance(&app, &owner.access).await["billing_status"],
        "past_due"
    );

    let paid = deliver(
        &app,
        &invoice("evt_p", "invoice.paid", t, "cus_1"),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert_eq!(paid["outcome"], "billing_status ok");
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect(200);
    // Redelivering the failure changes nothing.
    let again = deliver(
        &app,
        &invoice("evt_f", "invoice.payment_failed", t - 10, "cus_1"),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(balance(&app, &owner.access).await["billing_status"], "ok");

    let unknown = deliver(
        &app,
        &invoice("evt_u", "invoice.payment_failed", t, "cus_nobody"),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert!(unknown["outcome"].as_str().unwrap().starts_with("ignored"));
    // Event types Starfire does not act on are acknowledged.
    let other = deliver(
        &app,
        &json!({"id": "evt_x", "type": "customer.updated", "created": t, "data": {"object": {}}}),
        WEBHOOK_SECRET,
        t,
    )
    .await
    .expect(200);
    assert_eq!(
        other["outcome"],
        "ignored: 'customer.updated' is not acted on"
    );
}

/// Without Stripe configured, top-ups are refused with a clear error and the webhook answers
/// 503; billing otherwise works from the ledger.
async fn without_stripe_payments_are_off(app: TestApp) {
    let owner = app.signup("nostripe@example.com").await;
    let refused = app
        .post(
            "/v1/billing/top_ups",
            Some(&owner.access),
            json!({"amount_micros": 5_000_000}),
        )
        .await
        .expect_error(409, None);
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("not configured"));
    assert_eq!(
        balance(&app, &owner.access).await["top_ups_available"],
        false
    );
    deliver(
        &app,
        &json!({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}),
        WEBHOOK_SECRET,
        now_secs(),
    )
    .await
    .expect_error(503, None);
}

on_both_backends!(
    top_up_through_checkout_restores_service,
    postpaid_usage_becomes_meter_events_once,
    invoice_payments_suspend_and_restore_postpaid,
    without_stripe_payments_are_off,
);
