//! Billing: the dated price catalog, ledger entries with their causes (adjustments, refunds),
//! invoices (drafts, finalization, immutability, HTML) and the billing API.

use gateway::store::TenantId;
use std::time::Duration;

use gateway::billing::config::BillingConfig;
use gateway::billing::period::Period;
use gateway::metering::{Metering, Money, Prices};
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::invoices::InvoiceStatus;
use gateway::store::now_ms;
use gateway::store::tenants::Plan;
use gateway::store::usage::{Endpoint, FinalUsage, NewUsage, UsageEvent, UsageStatus};
use gateway::Store;
use serde_json::{json, Value};

use crate::support::{Session, TestApp};

const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdefghij";

const FIRST: Prices = Prices {
    input_micros_per_million: 1_000_000,
    cached_input_micros_per_million: 500_000,
    output_micros_per_million: 2_000_000,
};

/// The price the test changes to: odd numbers, so that per-request rounding shows.
const SECOND: Prices = Prices {
    input_micros_per_million: 3_333_333,
    cached_input_micros_per_million: 1_111_111,
    output_micros_per_million: 7_777_777,
};

/// The app with an operator token, the default model priced at `FIRST` in the configuration,
/// and free organizations starting with $5.
fn billed(app: TestApp) -> TestApp {
    let app = app.configure(|c| {
        c.billing
            .operator_tokens
            .insert("ops".to_owned(), OPERATOR_TOKEN.to_owned());
        c.metering.set_price(DEFAULT_MODEL_ID, FIRST);
        c.metering.free_grant = Money::from_micros(5_000_000);
    });
    let mut app = app;
    app.state.metering = Metering::new(
        app.state.store.clone(),
        app.state.config.metering.clone(),
        app.state.metrics.clone(),
    );
    app
}

fn chat() -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Count to three."}],
        "max_tokens": 5,
        "temperature": 0,
    })
}

async fn finished_events(store: &Store, tenant: &TenantId) -> Vec<UsageEvent> {
    let started = std::time::Instant::now();
    loop {
        let events = store.usage_events(tenant, 0, i64::MAX).await.unwrap();
        if events.iter().all(|e| e.status != UsageStatus::InProgress) {
            return events;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{events:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// N requests, a price change, N more: every request is billed at the price in effect at its
/// start, and the invoice's total equals the sum over usage events of tokens x price, to the
/// micro-dollar; it equals the ledger's usage debits; once finalized it never changes.
async fn invoice_across_a_price_change_equals_tokens_times_price(app: TestApp) {
    let app = billed(app).with_model();
    let owner = app.signup("prices@example.com").await;
    let tenant = owner.tenant_id.clone();
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;

    for _ in 0..3 {
        app.post("/v1/chat/completions", Some(&key), chat())
            .await
            .expect(200);
    }
    let (price, effective_ms) = schedule_second_price(&app, &owner, &key).await;

    // The catalog lists the configured price (since the beginning) and the new one.
    let prices = app
        .get(
            &format!("/v1/billing/prices?model={DEFAULT_MODEL_ID}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    let rows = prices["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{prices}");
    assert_eq!(rows[0]["effective_at"], 0);
    assert_eq!(rows[0]["created_by"], "config");
    assert_eq!(
        rows[0]["output_micros_per_million"],
        FIRST.output_micros_per_million
    );
    assert_eq!(rows[1]["id"], price["id"]);

    let expected_total = priced_at_their_start(&app, &tenant, effective_ms).await;

    let draft = running_statement(&app, &owner, &price, expected_total).await;

    // Finalized: stored once, listed, readable as JSON and HTML, and never changed again.
    let period = Period::containing(now_ms());
    let store = &app.state.store;
    let invoice = store
        .finalize_invoice(&tenant, period.start_ms(), period.end_ms())
        .await
        .unwrap();
    assert_eq!(invoice.status, InvoiceStatus::Finalized);
    assert_eq!(invoice.subtotal.micros(), expected_total);
    let id = invoice.id.clone().unwrap();
    let list = app
        .get("/v1/billing/invoices", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());
    let json = app
        .get(&format!("/v1/billing/invoices/{id}"), Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(json["status"], "finalized");
    assert_eq!(json["subtotal_micros"], expected_total);
    assert_eq!(json["lines"], draft["lines"]);
    let html = app
        .get(
            &format!("/v1/billing/invoices/{id}/html"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(html.status.as_u16(), 200);
    assert!(html.header("content-type").starts_with("text/html"));
    let page = html.body.as_str().unwrap();
    assert!(
        page.contains(&Money::from_micros(expected_total).to_string()),
        "{page}"
    );
    assert!(page.contains(&id));

    // More usage in the period after finalization: the invoice stays as it was.
    app.post("/v1/chat/completions", Some(&key), chat())
        .await
        .expect(200);
    finished_events(store, &tenant).await;
    let again = store
        .finalize_invoice(&tenant, period.start_ms(), period.end_ms())
        .await
        .unwrap();
    assert_eq!(again, store.invoice(&tenant, &id).await.unwrap().unwrap());
    assert_eq!(again.subtotal.micros(), expected_total);
    let redrafted = store
        .draft_invoice(&tenant, period.start_ms(), period.end_ms())
        .await
        .unwrap();
    assert!(redrafted.subtotal.micros() > expected_total);
    let upcoming = app
        .get("/v1/billing/invoices/upcoming", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(upcoming["id"], id.as_str());
    assert_eq!(upcoming["subtotal_micros"], expected_total);

    invoices_are_private(&app, &id, &key).await;
}

/// Only the platform operator can change prices, never in the past: the second price is
/// scheduled a moment ahead and waited for, then three more requests run through `key`.
/// Returns the price and the millisecond it takes effect.
async fn schedule_second_price(app: &TestApp, owner: &Session, key: &str) -> (Value, i64) {
    let price_body = json!({
        "model": DEFAULT_MODEL_ID.to_uppercase(),
        "input_micros_per_million": SECOND.input_micros_per_million,
        "cached_input_micros_per_million": SECOND.cached_input_micros_per_million,
        "output_micros_per_million": SECOND.output_micros_per_million,
    });
    app.post(
        "/v1/billing/admin/prices",
        Some(&owner.access),
        price_body.clone(),
    )
    .await
    .expect_error(403, None);
    let mut past = price_body.clone();
    past["effective_at"] = json!(now_ms() / 1000 - 10);
    app.post("/v1/billing/admin/prices", Some(OPERATOR_TOKEN), past)
        .await
        .expect_error(422, Some("effective_at"));
    let mut negative = price_body.clone();
    negative["output_micros_per_million"] = json!(-1);
    app.post("/v1/billing/admin/prices", Some(OPERATOR_TOKEN), negative)
        .await
        .expect_error(422, Some("output_micros_per_million"));
    let price = app
        .post("/v1/billing/admin/prices", Some(OPERATOR_TOKEN), price_body)
        .await
        .expect(201);
    assert_eq!(price["model"], DEFAULT_MODEL_ID);
    assert_eq!(price["created_by"], "operator:ops");
    let effective_ms = price["effective_at"].as_i64().unwrap() * 1000;
    assert!(effective_ms > now_ms());
    while now_ms() < effective_ms {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        app.post("/v1/chat/completions", Some(key), chat())
            .await
            .expect(200);
    }
    (price, effective_ms)
}

/// Each of the six events is priced at the price effective at its start; returns their total.
async fn priced_at_their_start(app: &TestApp, tenant: &TenantId, effective_ms: i64) -> i64 {
    let events = finished_events(&app.state.store, tenant).await;
    assert_eq!(events.len(), 6);
    let mut expected_total = 0i64;
    let (mut before, mut after) = (0, 0);
    for e in &events {
        let p = if e.started_ms < effective_ms {
            before += 1;
            FIRST
        } else {
            after += 1;
            SECOND
        };
        let cost = p.cost(e.prompt_tokens, e.cached_tokens, e.completion_tokens);
        assert_eq!(e.cost, cost, "{e:?}");
        expected_total += cost.micros();
    }
    assert_eq!((before, after), (3, 3));
    expected_total
}

/// The running statement: one line per price, the total to the micro-dollar, paid by
/// credits, and equal to the ledger's usage debits. Returns it.
async fn running_statement(
    app: &TestApp,
    owner: &Session,
    price: &Value,
    expected_total: i64,
) -> Value {
    let draft = app
        .get("/v1/billing/invoices/upcoming", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["subtotal_micros"], expected_total, "{draft}");
    assert_eq!(draft["credits_applied_micros"], expected_total);
    assert_eq!(draft["amount_due_micros"], 0);
    let lines = draft["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{draft}");
    assert_eq!(
        lines[0]["output_micros_per_million"],
        FIRST.output_micros_per_million
    );
    assert_eq!(
        lines[1]["output_micros_per_million"],
        SECOND.output_micros_per_million
    );
    assert_eq!(lines[1]["price_id"], price["id"]);
    for (line, n) in lines.iter().zip([3, 3]) {
        assert_eq!(line["requests"], n);
    }
    let line_sum: i64 = lines
        .iter()
        .map(|l| l["amount_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(line_sum, expected_total);
    let ledger = app
        .state
        .store
        .credit_ledger(&owner.tenant_id)
        .await
        .unwrap();
    let debits: i64 = ledger
        .iter()
        .filter(|e| e.kind == "usage")
        .map(|e| e.amount.micros())
        .sum();
    assert_eq!(-debits, expected_total);
    let balance = app
        .get("/v1/billing/balance", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(balance["balance_micros"], 5_000_000 - expected_total);
    assert_eq!(balance["mode"], "prepaid");
    draft
}

/// Another organization sees none of an organization's invoices; a project key cannot read
/// organization billing.
async fn invoices_are_private(app: &TestApp, id: &str, key: &str) {
    let other = app.signup("other-prices@example.com").await;
    app.get(&format!("/v1/billing/invoices/{id}"), Some(&other.access))
        .await
        .expect_error(404, None);
    app.get(
        &format!("/v1/billing/invoices/{id}/html"),
        Some(&other.access),
    )
    .await
    .expect_error(404, None);
    let theirs = app
        .get("/v1/billing/invoices", Some(&other.access))
        .await
        .expect(200);
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    // A project key cannot read organization billing.
    app.get("/v1/billing/invoices", Some(key))
        .await
        .expect_error(403, None);
}

/// Writes a finished usage event straight through the store (as the request path does).
async fn usage(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    started_ms: i64,
    tokens: (u64, u64, u64),
) {
    let price = gateway::billing::catalog::price_at(
        store,
        &gateway::metering::config::MeteringConfig::default(),
        DEFAULT_MODEL_ID,
        started_ms,
    )
    .await
    .unwrap();
    let (prompt, cached, completion) = tokens;
    let row = NewUsage {
        request_id: id.to_owned(),
        http_request_id: None,
        tenant_id: tenant.clone(),
        project_id: None,
        api_key_id: None,
        endpoint: Endpoint::Completions,
        model: DEFAULT_MODEL_ID.to_owned(),
        prompt_tokens: prompt,
        max_cost: price.prices.max_cost(prompt, completion),
        instance_id: "gw_test".into(),
        started_ms,
        price_id: Some(price.id),
    };
    store.admit_usage(&row, true).await.unwrap();
    let done = FinalUsage {
        status: UsageStatus::Completed,
        prompt_tokens: prompt,
        cached_tokens: cached,
        completion_tokens: completion,
        ttft_ms: Some(1),
        latency_ms: Some(2),
        cost: price.prices.cost(prompt, cached, completion),
        finished_ms: started_ms + 2,
    };
    assert!(store.finalize_usage(id, &done).await.unwrap());
}

/// The finalize routine stores each ended month's invoice once (postpaid: owed; prepaid: paid
/// by credits), skips the running month, and never changes an invoice again.
async fn finalize_routine_invoices_ended_months_once(app: TestApp) {
    let store = app.state.store.clone();
    let config = BillingConfig {
        invoice_grace_secs: 3600,
        ..BillingConfig::default()
    };
    let october = Period {
        year: 2026,
        month: 10,
    };
    let november = october.next();
    let enterprise = store.create_tenant("Acme", Plan::Enterprise).await.unwrap();
    let free = app.signup("routine@example.com").await.tenant_id;
    let t0 = october.start_ms() + 86_400_000;
    usage(&store, &enterprise.id, "r1", t0, (1_000, 200, 300)).await;
    usage(&store, &enterprise.id, "r2", t0 + 5_000, (10, 0, 1)).await;
    usage(&store, &free, "r3", t0 + 9_000, (100, 0, 100)).await;
    // November's usage is not due yet.
    usage(
        &store,
        &enterprise.id,
        "r4",
        november.start_ms() + 1_000,
        (5, 0, 5),
    )
    .await;
    let cost = |p: u64, c: u64, o: u64| Prices::DEFAULT.cost(p, c, o).micros();

    // Not due within the grace after the month's end.
    let early = november.start_ms() + 1_000;
    assert!(
        gateway::billing::invoice::finalize_due(&store, &config, early)
            .await
            .unwrap()
            .is_empty()
    );
    let now = november.start_ms() + 2 * 86_400_000;
    let stored = gateway::billing::invoice::finalize_due(&store, &config, now)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let acme = store
        .invoice_for_period(&enterprise.id, october.start_ms())
        .await
        .unwrap()
        .unwrap();
    let owed = cost(1_000, 200, 300) + cost(10, 0, 1);
    assert_eq!(acme.subtotal.micros(), owed);
    assert_eq!(acme.credits_applied, Money::ZERO);
    assert_eq!(acme.amount_due.micros(), owed);
    assert_eq!(acme.plan, "enterprise");
    assert_eq!(acme.lines.len(), 1);
    let line = &acme.lines[0];
    assert_eq!(
        (
            line.requests,
            line.input_tokens,
            line.cached_tokens,
            line.output_tokens
        ),
        (2, 810, 200, 301)
    );
    assert_eq!(line.prices, Some(Prices::DEFAULT));
    let prepaid = store
        .invoice_for_period(&free, october.start_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prepaid.subtotal.micros(), cost(100, 0, 100));
    assert_eq!(prepaid.credits_applied, prepaid.subtotal);
    assert_eq!(prepaid.amount_due, Money::ZERO);
    assert!(store
        .invoice_for_period(&enterprise.id, november.start_ms())
        .await
        .unwrap()
        .is_none());

    // Run again, and after a late event in October: nothing new, nothing changed.
    assert!(
        gateway::billing::invoice::finalize_due(&store, &config, now)
            .await
            .unwrap()
            .is_empty()
    );
    usage(&store, &enterprise.id, "r5", t0 + 60_000, (50, 0, 50)).await;
    assert!(
        gateway::billing::invoice::finalize_due(&store, &config, now + 3_600_000)
            .await
            .unwrap()
            .is_empty()
    );
    let after = store
        .invoice_for_period(&enterprise.id, october.start_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, acme);
}

/// Adjustments and refunds are the operator's, carry a reason and point at their cause; the
/// balance is the ledger's sum; the ledger pages newest first.
async fn ledger_entries_point_at_their_cause(app: TestApp) {
    // Without operator tokens configured the admin routes are closed.
    let owner = app.signup("ledger@example.com").await;
    let tenant = owner.tenant_id.clone();
    let adjust = format!("/v1/billing/admin/organizations/{tenant}/adjustments");
    app.post(
        &adjust,
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 1, "reason": "x"}),
    )
    .await
    .expect_error(401, None);
    app.post(
        &adjust,
        Some(&owner.access),
        json!({"amount_micros": 1, "reason": "x"}),
    )
    .await
    .expect_error(403, None);
    let app = billed(app);

    refused_adjustments(&app, &owner, &adjust).await;

    let credit = app
        .post(
            &adjust,
            Some(OPERATOR_TOKEN),
            json!({"amount_micros": 1_000_000, "reason": "outage credit, ticket 42"}),
        )
        .await
        .expect(201);
    assert_eq!(credit["kind"], "adjustment");
    assert_eq!(credit["actor"], "operator:ops");
    assert_eq!(credit["reason"], "outage credit, ticket 42");
    // A debit past the balance is refused.
    app.post(
        &adjust,
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": -100_000_000, "reason": "too much"}),
    )
    .await
    .expect_error(409, None);

    refund_once(&app, &tenant).await;

    // The balance is the ledger's sum: grant + credit - debit + refund.
    let balance = app
        .get("/v1/billing/balance", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(balance["balance_micros"], 6_000_000);
    assert_eq!(balance["plan"], "free");

    ledger_pages(&app, &owner).await;

    // Operator actions are in the organization's audit log.
    let audit = app
        .get("/v1/organization/audit_logs", Some(&owner.access))
        .await
        .expect(200);
    let text = audit.to_string();
    assert!(text.contains("billing.credits_adjusted"), "{text}");
    assert!(text.contains("billing.usage_refunded"), "{text}");
}

/// An organization's own credentials cannot credit it, a wrong operator token is 401, and a
/// zero amount, a blank reason or an unknown organization are refused.
async fn refused_adjustments(app: &TestApp, owner: &Session, adjust: &str) {
    let (_, admin_key) = app.create_admin_key(&owner.access).await;
    for token in [owner.access.as_str(), admin_key.as_str()] {
        app.post(
            adjust,
            Some(token),
            json!({"amount_micros": 1_000, "reason": "x"}),
        )
        .await
        .expect_error(403, None);
    }
    app.post(
        adjust,
        Some("wrong-token-0123456789abcdefgh"),
        json!({"amount_micros": 1_000, "reason": "x"}),
    )
    .await
    .expect_error(401, None);
    app.post(
        adjust,
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 0, "reason": "x"}),
    )
    .await
    .expect_error(422, Some("amount_micros"));
    app.post(
        adjust,
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 5, "reason": "  "}),
    )
    .await
    .expect_error(422, Some("reason"));
    app.post(
        "/v1/billing/admin/organizations/org_nope/adjustments",
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 5, "reason": "x"}),
    )
    .await
    .expect_error(404, None);
}

/// A request's debit, then its refund (once); postpaid organizations have no balance to adjust.
async fn refund_once(app: &TestApp, tenant: &TenantId) {
    let store = &app.state.store;
    usage(
        store,
        tenant,
        "chatcmpl-refund",
        now_ms(),
        (1_000, 0, 1_000),
    )
    .await;
    let debit = store
        .usage_debit(tenant, "chatcmpl-refund")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(debit.request_id.as_deref(), Some("chatcmpl-refund"));
    // The debit is dated at the request's end; the refund comes strictly after it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let refunds = format!("/v1/billing/admin/organizations/{tenant}/refunds");
    let refund = app
        .post(
            &refunds,
            Some(OPERATOR_TOKEN),
            json!({"request_id": "chatcmpl-refund", "reason": "bad output"}),
        )
        .await
        .expect(201);
    assert_eq!(refund["kind"], "refund");
    assert_eq!(refund["refund_of"], debit.id.as_str());
    assert_eq!(refund["amount_micros"], -debit.amount.micros());
    app.post(
        &refunds,
        Some(OPERATOR_TOKEN),
        json!({"request_id": "chatcmpl-refund", "reason": "again"}),
    )
    .await
    .expect_error(409, None);
    app.post(
        &refunds,
        Some(OPERATOR_TOKEN),
        json!({"request_id": "chatcmpl-unknown", "reason": "x"}),
    )
    .await
    .expect_error(404, None);
    // Postpaid organizations have no balance to adjust.
    let acme = store.create_tenant("Acme", Plan::Enterprise).await.unwrap();
    app.post(
        &format!("/v1/billing/admin/organizations/{}/adjustments", acme.id),
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": 5, "reason": "x"}),
    )
    .await
    .expect_error(409, None);
}

/// The ledger, newest first, two per page: refund, usage, adjustment, grant, summing to the
/// balance.
async fn ledger_pages(app: &TestApp, owner: &Session) {
    let mut seen: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/billing/ledger?limit=2&after={a}"),
            None => "/v1/billing/ledger?limit=2".to_owned(),
        };
        let page = app.get(&path, Some(&owner.access)).await.expect(200);
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        after = Some(page["last_id"].as_str().unwrap().to_owned());
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["refund", "usage", "adjustment", "grant"]);
    assert_eq!(seen[3]["actor"], "system");
    assert_eq!(seen[1]["request_id"], "chatcmpl-refund");
    let sum: i64 = seen
        .iter()
        .map(|e| e["amount_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 6_000_000);
}

/// Plans decide how a request is paid: free from its signup grant, pay-as-you-go only from
/// credits it holds (none: 429 `insufficient_quota`), enterprise postpaid (nothing reserved,
/// invoiced).
async fn plans_decide_prepaid_or_postpaid(app: TestApp) {
    use gateway::auth::{Credential, RequestContext};
    use gateway::metering::Charge;
    use gateway::store::api_keys::KeyLimits;
    let app = billed(app);
    let store = &app.state.store;
    let principal = |tenant: &TenantId| gateway::Principal {
        credential: Credential::ApiKey,
        tenant_id: tenant.clone(),
        project_id: None,
        key_id: None,
        user_id: None,
        session_id: None,
        role: None,
        scopes: Vec::new(),
        limits: KeyLimits::default(),
        limit_context: None,
        request: RequestContext::default(),
    };
    let charge = |id: &str| Charge {
        request_id: id.to_owned(),
        endpoint: Endpoint::Completions,
        model: DEFAULT_MODEL_ID.to_owned(),
        price_model: None,
        prompt_tokens: 100,
        max_completion_tokens: 100,
    };
    let max = FIRST.max_cost(100, 100);

    let payg = store.create_tenant("Payg", Plan::PayAsYouGo).await.unwrap();
    let refused = app
        .state
        .metering
        .admit(&principal(&payg.id), charge("payg-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, gateway::ApiError::InsufficientQuota(_)),
        "{refused:?}"
    );
    // Credits bought (here an operator's adjustment) pay for its requests.
    app.post(
        &format!("/v1/billing/admin/organizations/{}/adjustments", payg.id),
        Some(OPERATOR_TOKEN),
        json!({"amount_micros": max.micros(), "reason": "prepaid"}),
    )
    .await
    .expect(201);
    let meter = app
        .state
        .metering
        .admit(&principal(&payg.id), charge("payg-2"))
        .await
        .unwrap();
    assert_eq!(meter.reserved(), max);
    drop(meter);

    let acme = store.create_tenant("Acme", Plan::Enterprise).await.unwrap();
    let meter = app
        .state
        .metering
        .admit(&principal(&acme.id), charge("acme-1"))
        .await
        .unwrap();
    assert_eq!(meter.reserved(), Money::ZERO);
    drop(meter);
    assert!(store.credit_balance(&acme.id).await.unwrap().is_none());

    let free = store.create_tenant("Free", Plan::Free).await.unwrap();
    let meter = app
        .state
        .metering
        .admit(&principal(&free.id), charge("free-1"))
        .await
        .unwrap();
    assert_eq!(meter.reserved(), max);
    drop(meter);
    let balance = store.credit_balance(&free.id).await.unwrap().unwrap();
    assert_eq!(balance.balance.micros(), 5_000_000);
}

/// Transactions that read and then write, run concurrently from several connections (plan
/// changes here; every store transaction begins the same way): none fails. On SQLite a
/// deferred transaction did ("database is locked", a 500), found by the contract test.
async fn concurrent_read_then_write_transactions_wait_their_turn(app: TestApp) {
    let store = app.state.store.clone();
    let tenant = store.create_tenant("Busy", Plan::PayAsYouGo).await.unwrap();
    let changes = (0..24).map(|i| {
        let (store, tenant) = (store.clone(), tenant.id.clone());
        let plan = [Plan::Enterprise, Plan::PayAsYouGo, Plan::Free][i % 3];
        actix_web::rt::spawn(async move { store.change_plan(&tenant, plan).await })
    });
    for change in futures_util::future::join_all(changes).await {
        match change.unwrap() {
            // Becoming enterprise needs an empty balance: a refusal, not a failure.
            Ok(_) | Err(gateway::store::StoreError::Conflict(_)) => {}
            Err(e) => panic!("a plan change failed: {e}"),
        }
    }
}

/// The metering's price cache answers as the catalog does: a price added after the cache
/// read the current one applies from its start, and a later price the cache knew of ends its
/// entry where it starts.
async fn the_price_cache_answers_as_the_catalog_does(app: TestApp) {
    use gateway::billing::catalog::{PriceCache, MIN_NOTICE_MS};
    let store = &app.state.store;
    let config = gateway::metering::config::MeteringConfig::default();
    let cache = PriceCache::default();
    let model = "cache-model";
    let first = cache
        .price_at(store, &config, model, now_ms())
        .await
        .unwrap();
    let second_at = now_ms() + MIN_NOTICE_MS;
    let second = store
        .add_price(model, SECOND, second_at, "operator:test")
        .await
        .unwrap();
    let third_at = second_at + 60_000;
    let third = store
        .add_price(model, FIRST, third_at, "operator:test")
        .await
        .unwrap();
    let at = |t: i64| cache.price_at(store, &config, "Cache-Model", t);
    assert_eq!(at(second_at - 1).await.unwrap().id, first.id);
    assert_eq!(at(second_at).await.unwrap().id, second.id);
    assert_eq!(at(third_at - 1).await.unwrap().id, second.id);
    assert_eq!(at(third_at).await.unwrap().id, third.id);
    assert_eq!(at(second_at).await.unwrap().id, second.id);
    assert_eq!(at(second_at - 1).await.unwrap().id, first.id);
}

on_both_backends!(
    the_price_cache_answers_as_the_catalog_does,
    concurrent_read_then_write_transactions_wait_their_turn,
    plans_decide_prepaid_or_postpaid,
    invoice_across_a_price_change_equals_tokens_times_price,
    finalize_routine_invoices_ended_months_once,
    ledger_entries_point_at_their_cause,
);
