//! Metering and budgets: one usage event per request (also for clients that leave mid-stream
//! and for processes that die), prepaid credits that concurrency cannot overspend, and
//! `/metrics`. (The usage and costs API against the raw events is `usage_api`.)

use gateway::store::{ProjectId, TenantId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gateway::metering::{Metering, Money, Prices};
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::credits::CreditKind;
use gateway::store::now_ms;
use gateway::store::usage::{Endpoint, FinalUsage, NewUsage, UsageEvent, UsageStatus};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::support::{Session, TestApp};

/// One token costs one micro-dollar in and two out, cached or not (so that the real cost of
/// an `ignore_eos` request is exactly its maximum).
pub const PRICES: Prices = Prices {
    input_micros_per_million: 1_000_000,
    cached_input_micros_per_million: 1_000_000,
    output_micros_per_million: 2_000_000,
};

/// The app with the model, metered at `PRICES`, free organizations starting with `grant`.
pub fn priced(mut app: TestApp, grant: i64) -> TestApp {
    let mut config = app.state.config.metering.clone();
    config.set_price(DEFAULT_MODEL_ID, PRICES);
    config.free_grant = Money::from_micros(grant);
    app.state.metering = Metering::new(app.state.store.clone(), config, app.state.metrics.clone());
    app.with_model()
}

/// An organization (owner session), its default project and an inference key (id, value).
pub async fn org(app: &TestApp, email: &str) -> (Session, String, (String, String)) {
    let owner = app.signup(email).await;
    let project = app.default_project(&owner.access).await;
    let key = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    (owner, project, key)
}

pub fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 6,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

pub async fn events(app: &TestApp, tenant: &TenantId) -> Vec<UsageEvent> {
    app.state
        .store
        .usage_events(tenant, 0, i64::MAX)
        .await
        .unwrap()
}

/// The event of `request_id` once it is final (the end of a stream is written right after
/// the stream's last chunk).
pub(crate) async fn final_event(app: &TestApp, tenant: &TenantId, request_id: &str) -> UsageEvent {
    let started = std::time::Instant::now();
    loop {
        let event = app
            .state
            .store
            .usage_event(tenant, request_id)
            .await
            .unwrap()
            .expect("the request has a usage row");
        if event.status != UsageStatus::InProgress {
            return event;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still in progress: {event:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The balance equals the ledger's sum, nothing is held, and it is not negative.
async fn assert_ledger_adds_up(app: &TestApp, tenant: &TenantId) -> Money {
    let account = app
        .state
        .store
        .credit_balance(tenant)
        .await
        .unwrap()
        .expect("a prepaid account");
    let ledger = app.state.store.credit_ledger(tenant).await.unwrap();
    let sum: i64 = ledger.iter().map(|e| e.amount.micros()).sum();
    assert_eq!(account.balance.micros(), sum, "{ledger:?}");
    assert_eq!(account.reserved, Money::ZERO);
    assert!(account.balance >= Money::ZERO);
    account.balance
}

async fn usage_exactly_once(app: TestApp) {
    let app = priced(app, 5_000_000);
    let (owner, project, (key_id, key)) = org(&app, "usage@example.com").await;
    let tenant = owner.tenant_id.clone();

    // Non-streaming chat: the row is final when the answer arrives, with its counts.
    let body = app
        .post("/v1/chat/completions", Some(&key), chat(json!({})))
        .await
        .expect(200);
    let id = body["id"].as_str().unwrap();
    let e = app
        .state
        .store
        .usage_event(&tenant, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, UsageStatus::Completed);
    assert_eq!(
        e.prompt_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        e.completion_tokens,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(e.project_id.as_deref(), Some(project.as_str()));
    assert_eq!(e.api_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(e.model, DEFAULT_MODEL_ID);
    assert_eq!(e.endpoint, "completions");
    assert!(e.ttft_ms.is_some() && e.latency_ms.is_some());
    assert_eq!(
        e.cost,
        PRICES.cost(e.prompt_tokens, e.cached_tokens, e.completion_tokens)
    );

    // Streaming chat, read to the end.
    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
        )
        .await
        .expect(200);
    let text = body.as_str().unwrap();
    let last: Value = serde_json::from_str(
        text.split("\n\n")
            .filter(|e| e.starts_with("data: {"))
            .last()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    let stream_id = last["id"].as_str().unwrap();
    let e = final_event(&app, &tenant, stream_id).await;
    assert_eq!(e.status, UsageStatus::Completed);
    assert_eq!(
        e.completion_tokens,
        last["usage"]["completion_tokens"].as_u64().unwrap()
    );

    completions_and_embeddings_once(&app, &key, &tenant).await;

    // One row per request id, and the ledger debits exactly the events' costs.
    let all = events(&app, &tenant).await;
    assert!(all.iter().all(|e| e.status != UsageStatus::InProgress));
    let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM usage_events WHERE tenant_id = $1")
        .bind(&tenant)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(rows as usize, all.len());
    let billed: i64 = all.iter().map(|e| e.cost.micros()).sum();
    let balance = assert_ledger_adds_up(&app, &tenant).await;
    assert_eq!(balance.micros(), 5_000_000 - billed);

    // The credits route shows the same account: the grant, then one debit per request.
    let credits = app
        .get("/v1/organization/credits", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(credits["mode"], "prepaid");
    assert_eq!(credits["balance_micros"], balance.micros());
    assert_eq!(credits["available_micros"], balance.micros());
    let ledger = credits["ledger"].as_array().unwrap();
    assert_eq!(ledger[0]["kind"], "grant");
    assert_eq!(ledger[0]["amount_micros"], 5_000_000);
    assert_eq!(ledger.len(), 1 + all.len());
    app.get("/v1/organization/credits", Some(&key))
        .await
        .expect_error(403, None);
}

/// Text completions over two prompts and n = 2 are one event for the whole request;
/// embeddings are one event priced on their input.
async fn completions_and_embeddings_once(app: &TestApp, key: &str, tenant: &TenantId) {
    // Text completions over two prompts and n = 2: one event for the whole request.
    let body = app
        .post(
            "/v1/completions",
            Some(key),
            json!({"model": DEFAULT_MODEL_ID, "prompt": ["One", "Two"], "n": 2,
                   "max_tokens": 3, "temperature": 0}),
        )
        .await
        .expect(200);
    let e = app
        .state
        .store
        .usage_event(tenant, body["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, UsageStatus::Completed);
    assert_eq!(
        e.completion_tokens,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        e.prompt_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );

    // Embeddings.
    let body = app
        .post(
            "/v1/embeddings",
            Some(key),
            json!({"model": DEFAULT_MODEL_ID, "input": ["a b c", "d e"]}),
        )
        .await
        .expect(200);
    let all = events(app, tenant).await;
    let embedding = all.iter().find(|e| e.endpoint == "embeddings").unwrap();
    assert_eq!(embedding.status, UsageStatus::Completed);
    assert_eq!(
        embedding.prompt_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(embedding.cost, PRICES.cost(embedding.prompt_tokens, 0, 0));
}

/// A client that leaves mid-stream is billed for the tokens generated until the abort (what it
/// received, within one step), and its reservation is released.
async fn disconnect_mid_stream_records_cancelled(app: TestApp) {
    use actix_web::body::MessageBody;

    let app = priced(app, 5_000_000);
    let (owner, _, (_, key)) = org(&app, "leaver@example.com").await;
    let service =
        actix_web::test::init_service(gateway::app_with(app.state.clone(), ::console::configure))
            .await;
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/chat/completions")
        .insert_header(("authorization", format!("Bearer {key}")))
        .set_json(chat(
            json!({"stream": true, "max_tokens": 500, "ignore_eos": true,
                              "logprobs": true}),
        ))
        .to_request();
    let resp = actix_web::test::call_service(&service, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = Box::pin(resp.into_body());
    let mut received = 0u64;
    let mut id = String::new();
    let mut pending = String::new();
    while received < 8 {
        let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .expect("the stream goes on")
            .unwrap_or_else(|_| panic!("body error"));
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: Value =
                serde_json::from_str(pending[..end].strip_prefix("data: ").unwrap()).unwrap();
            pending.drain(..end + 2);
            id = event["id"].as_str().unwrap().to_owned();
            for choice in event["choices"].as_array().unwrap() {
                if let Some(tokens) = choice["logprobs"]["content"].as_array() {
                    received += tokens.len() as u64;
                }
            }
        }
    }
    drop(body);
    let e = final_event(&app, &owner.tenant_id, &id).await;
    assert_eq!(e.status, UsageStatus::Cancelled);
    assert!(
        e.completion_tokens >= received && e.completion_tokens <= received + 1,
        "recorded {} tokens, the client received {received}",
        e.completion_tokens
    );
    assert_eq!(e.cost, PRICES.cost(e.prompt_tokens, 0, e.completion_tokens));
    assert!(
        e.cost < e.reserved,
        "the rest of the reservation is released"
    );
    let balance = assert_ledger_adds_up(&app, &owner.tenant_id).await;
    assert_eq!(balance.micros(), 5_000_000 - e.cost.micros());
}

/// In-flight rows of a process that died are closed at the next start with the tokens last
/// reported, exactly once, and their reservation is settled.
async fn orphans_are_closed_on_restart(app: TestApp) {
    let owner = app.signup("orphan@example.com").await;
    let tenant = owner.tenant_id.clone();
    let store = app.state.store.clone();
    let long_ago = now_ms() - 600_000;
    let row = |id: &str, instance: &str, started_ms: i64| NewUsage {
        request_id: id.to_owned(),
        http_request_id: None,
        tenant_id: tenant.clone(),
        project_id: Some("proj_x".into()),
        api_key_id: Some("key_x".into()),
        endpoint: Endpoint::Completions,
        model: DEFAULT_MODEL_ID.to_owned(),
        prompt_tokens: 20,
        max_cost: Prices::DEFAULT.max_cost(20, 100),
        instance_id: instance.to_owned(),
        started_ms,
        price_id: None,
    };
    // The dead process admitted a request and reported 7 tokens before it died.
    store
        .admit_usage(&row("chatcmpl-dead", "gw_dead", long_ago), false)
        .await
        .unwrap();
    store
        .usage_progress("chatcmpl-dead", 7, Some(40), long_ago + 1_000)
        .await
        .unwrap();
    // A live replica's request (fresh heartbeat) must survive a periodic sweep.
    let now = now_ms();
    store
        .admit_usage(&row("chatcmpl-live", "gw_live", now), false)
        .await
        .unwrap();

    // A new process: its periodic sweep closes only the stale row.
    let restarted = Metering::new(
        store.clone(),
        app.state.config.metering.clone(),
        app.state.metrics.clone(),
    );
    assert_eq!(restarted.sweep_orphans(false).await.unwrap(), 1);
    let e = app
        .state
        .store
        .usage_event(&tenant, "chatcmpl-dead")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, UsageStatus::Interrupted);
    assert_eq!((e.prompt_tokens, e.completion_tokens), (20, 7));
    assert_eq!(e.ttft_ms, Some(40));
    assert_eq!(e.latency_ms, Some(1_000));
    assert_eq!(e.cost, Prices::DEFAULT.cost(20, 0, 7));
    let live = store
        .usage_event(&tenant, "chatcmpl-live")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.status, UsageStatus::InProgress);
    // Exactly once: another sweep (or a late finalization) changes nothing.
    assert_eq!(restarted.sweep_orphans(false).await.unwrap(), 0);
    let late = FinalUsage {
        status: UsageStatus::Completed,
        prompt_tokens: 20,
        cached_tokens: 0,
        completion_tokens: 99,
        ttft_ms: None,
        latency_ms: None,
        cost: Money::from_micros(1),
        finished_ms: now_ms(),
    };
    assert!(!store.finalize_usage("chatcmpl-dead", &late).await.unwrap());
    // The live request ends normally; then everything adds up.
    assert!(store.finalize_usage("chatcmpl-live", &late).await.unwrap());
    assert_ledger_adds_up(&app, &tenant).await;
    let ledger = store.credit_ledger(&tenant).await.unwrap();
    let debits: Vec<_> = ledger.iter().filter(|e| e.kind == "usage").collect();
    assert_eq!(debits.len(), 2);
}

/// With Redis, a dead process's request is billed to the step it journaled, even past its last
/// heartbeat; a journal behind the heartbeat never lowers the count.
async fn orphans_are_billed_to_their_journaled_step(app: TestApp) {
    use gateway::metering::journal::ProgressJournal;
    let owner = app.signup("journal@example.com").await;
    let tenant = owner.tenant_id.clone();
    let store = app.state.store.clone();
    let long_ago = now_ms() - 600_000;
    let suffix = gateway::auth::secret::random_base62(12);
    let ahead = format!("chatcmpl-ahead-{suffix}");
    let behind = format!("chatcmpl-behind-{suffix}");
    for (id, heartbeat_tokens) in [(&ahead, 3), (&behind, 5)] {
        let row = NewUsage {
            request_id: id.clone(),
            http_request_id: None,
            tenant_id: tenant.clone(),
            project_id: Some("proj_x".into()),
            api_key_id: Some("key_x".into()),
            endpoint: Endpoint::Completions,
            model: DEFAULT_MODEL_ID.to_owned(),
            prompt_tokens: 20,
            max_cost: Prices::DEFAULT.max_cost(20, 100),
            instance_id: "gw_dead".to_owned(),
            started_ms: long_ago,
            price_id: None,
        };
        store.admit_usage(&row, false).await.unwrap();
        store
            .usage_progress(id, heartbeat_tokens, Some(40), long_ago + 1_000)
            .await
            .unwrap();
    }
    // What the dead process journaled after its last heartbeat (and, for the other request,
    // a count older than its heartbeat).
    let url = crate::rate_limits::redis_url();
    let timeout = Duration::from_millis(500);
    let journal = ProgressJournal::new(&url, timeout, 60).unwrap();
    journal.progress(&ahead, 9);
    journal.progress(&behind, 2);
    let ids = vec![ahead.clone(), behind.clone()];
    let started = std::time::Instant::now();
    while journal.read(&ids).await.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the journal never wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let restarted = Metering::with_journal(
        store.clone(),
        app.state.config.metering.clone(),
        app.state.metrics.clone(),
        Some((&url, timeout)),
    );
    assert_eq!(restarted.sweep_orphans(false).await.unwrap(), 2);
    let ahead_event = store.usage_event(&tenant, &ahead).await.unwrap().unwrap();
    assert_eq!(ahead_event.status, UsageStatus::Interrupted);
    assert_eq!(ahead_event.completion_tokens, 9);
    assert_eq!(ahead_event.cost, Prices::DEFAULT.cost(20, 0, 9));
    let behind_event = store.usage_event(&tenant, &behind).await.unwrap().unwrap();
    assert_eq!(behind_event.completion_tokens, 5);
    assert_ledger_adds_up(&app, &tenant).await;
}

/// A balance that pays for exactly 10 requests, 50 at once: 10 succeed, 40 get 429
/// `insufficient_quota`, the balance ends at zero and the ledger adds up.
async fn concurrent_requests_cannot_overspend(app: TestApp) {
    let app = priced(app, 0);
    let (owner, project, (_, key)) = org(&app, "race@example.com").await;
    let tenant = owner.tenant_id.clone();
    // Rate limits out of the way (the free plan runs 8 at once): the budget alone decides.
    app.state
        .store
        .set_project_limits(
            &tenant,
            &ProjectId::from(project.as_str()),
            gateway::store::api_keys::KeyLimits {
                rpm: Some(10_000),
                tpm: Some(10_000_000),
                concurrency: Some(100),
            },
        )
        .await
        .unwrap();
    let body = chat(json!({"max_tokens": 4, "ignore_eos": true}));
    let prompt = app
        .post(
            "/v1/tokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "messages": body["messages"]}),
        )
        .await
        .expect(200)["count"]
        .as_u64()
        .unwrap();
    let one = PRICES.max_cost(prompt, 4);
    app.state
        .store
        .add_credits(
            &tenant,
            CreditKind::TopUp,
            Money::from_micros(one.micros() * 10),
            None,
        )
        .await
        .unwrap();

    let service =
        actix_web::test::init_service(gateway::app_with(app.state.clone(), ::console::configure))
            .await;
    let calls = (0..50).map(|_| {
        let req = actix_web::test::TestRequest::post()
            .uri("/v1/chat/completions")
            .insert_header(("authorization", format!("Bearer {key}")))
            .set_json(&body)
            .to_request();
        actix_web::test::call_service(&service, req)
    });
    let responses = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    let mut refused = 0;
    for resp in responses {
        let status = resp.status().as_u16();
        let body: Value = actix_web::test::read_body_json(resp).await;
        match status {
            200 => ok += 1,
            429 => {
                refused += 1;
                assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
                assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
                assert!(body["error"]["param"].is_null(), "{body}");
                assert!(body["error"]["message"].as_str().unwrap().contains("quota"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, refused), (10, 40));
    let balance = assert_ledger_adds_up(&app, &tenant).await;
    assert_eq!(balance, Money::ZERO);
    let all = events(&app, &tenant).await;
    assert_eq!(all.len(), 50, "one row per request, refused ones included");
    let statuses: BTreeMap<&str, usize> = all.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.status.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        statuses,
        BTreeMap::from([("completed", 10), ("rejected", 40)])
    );
    assert!(
        app.state
            .metrics
            .counter_value("starfire_budget_refusals_total", &[("reason", "balance")])
            >= 40
    );
}

/// `/metrics` shows the gateway's series and the scheduler's `starfire:` ones.
async fn metrics_expose_gateway_and_scheduler_series(app: TestApp) {
    let app = priced(app, 0);
    // Scheduler series come from the shared engine (other tests may be using it too).
    let (_, _, (_, key)) = org(&app, "metrics@example.com").await;
    // No credit: refused with insufficient_quota.
    app.post("/v1/chat/completions", Some(&key), chat(json!({})))
        .await
        .expect_error(429, None);
    let body = app.get("/metrics", None).await;
    assert_eq!(body.status.as_u16(), 200);
    assert!(body.header("content-type").starts_with("text/plain"));
    let text = body.body.as_str().unwrap().to_owned();
    for series in [
        "starfire_http_requests_total{route=\"/v1/chat/completions\",method=\"POST\",status=\"429\"} 1",
        "starfire_http_request_duration_seconds_bucket{route=\"/v1/chat/completions\",method=\"POST\",le=\"+Inf\"} 1",
        "starfire_budget_refusals_total{reason=\"balance\"} 1",
        "starfire_usage_write_seconds_count{op=\"admit\"}",
        "# TYPE starfire:num_requests_running gauge",
        "starfire:kv_cache_usage_perc",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    // With a token configured, a scrape must present it.
    let mut config = (*app.state.config).clone();
    config.metrics_token = Some("scrape-secret".into());
    let mut locked = app;
    locked.state.config = Arc::new(config);
    locked.get("/metrics", None).await.expect_error(401, None);
    assert_eq!(
        locked
            .get("/metrics", Some("scrape-secret"))
            .await
            .status
            .as_u16(),
        200
    );
}

on_both_backends!(
    orphans_are_billed_to_their_journaled_step,
    usage_exactly_once,
    disconnect_mid_stream_records_cancelled,
    orphans_are_closed_on_restart,
    concurrent_requests_cannot_overspend,
    metrics_expose_gateway_and_scheduler_series,
);
