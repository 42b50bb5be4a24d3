//! The usage and costs API against the raw usage events: every bucket width and grouping,
//! tenant isolation, and a project key's view.

use std::collections::BTreeMap;

use gateway::metering::Money;
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::usage::{Endpoint, FinalUsage, NewUsage, UsageEvent, UsageStatus};
use gateway::store::{now_ms, TenantId};
use gateway::Store;

use crate::metering::events;
use crate::support::{Session, TestApp};

/// Sums raw events the way the API groups them (the reference the API must match).
fn reference(
    events: &[UsageEvent],
    endpoint: &str,
    start_ms: i64,
    width_ms: i64,
    groups: &[&str],
) -> BTreeMap<(i64, Vec<String>), [i64; 5]> {
    let mut out: BTreeMap<(i64, Vec<String>), [i64; 5]> = BTreeMap::new();
    for e in events.iter().filter(|e| {
        (endpoint.is_empty() || e.endpoint == endpoint) && e.status != UsageStatus::Rejected
    }) {
        let bucket =
            (e.started_ms - start_ms).div_euclid(width_ms) * width_ms / 1000 + start_ms / 1000;
        let key: Vec<String> = groups
            .iter()
            .map(|g| match *g {
                "project_id" => e.project_id.clone().map(String::from).unwrap_or_default(),
                "api_key_id" => e.api_key_id.clone().map(String::from).unwrap_or_default(),
                _ => e.model.clone(),
            })
            .collect();
        let t = out.entry((bucket, key)).or_default();
        t[0] += 1;
        t[1] += e.prompt_tokens as i64;
        t[2] += e.cached_tokens as i64;
        t[3] += e.completion_tokens as i64;
        t[4] += e.cost.micros();
    }
    out
}

/// Every page of a usage query, as the same map as `reference`.
async fn from_api(
    app: &TestApp,
    token: &str,
    path: &str,
    query: &str,
    groups: &[&str],
) -> BTreeMap<(i64, Vec<String>), [i64; 5]> {
    let mut out = BTreeMap::new();
    let mut page: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &page {
            Some(p) => format!("{path}?{query}&page={p}"),
            None => format!("{path}?{query}"),
        };
        let body = app.get(&url, Some(token)).await.expect(200);
        assert_eq!(body["object"], "page");
        for bucket in body["data"].as_array().unwrap() {
            assert_eq!(bucket["object"], "bucket");
            let start = bucket["start_time"].as_i64().unwrap();
            for r in bucket["results"].as_array().unwrap() {
                let key: Vec<String> = groups
                    .iter()
                    .map(|g| r[*g].as_str().unwrap_or_default().to_owned())
                    .collect();
                let cost = r["amount"]["value"]
                    .as_f64()
                    .map(|v| (v * 1_000_000.0).round() as i64)
                    .unwrap_or(0);
                let t: [i64; 5] = [
                    r["num_model_requests"].as_i64().unwrap_or(0),
                    r["input_tokens"].as_i64().unwrap_or(0),
                    r["input_cached_tokens"].as_i64().unwrap_or(0),
                    r["output_tokens"].as_i64().unwrap_or(0),
                    cost,
                ];
                assert!(out.insert((start, key), t).is_none());
            }
        }
        pages += 1;
        assert!(pages < 20);
        match body["next_page"].as_str() {
            Some(next) => {
                assert_eq!(body["has_more"], true);
                page = Some(next.to_owned());
            }
            None => break,
        }
    }
    out
}

const DAY_MS: i64 = 86_400_000;

/// The usage and costs API equal the sums of the raw events for every bucket width and
/// grouping; other tenants' events never show; a project key sees its project only.
async fn usage_api_totals_equal_raw_events(app: TestApp) {
    let owner = app.signup("reader@example.com").await;
    let other = app.signup("other@example.com").await;
    let tenant = owner.tenant_id.clone();
    let store = app.state.store.clone();
    // Three days, starting mid-day, minute-aligned.
    let start_ms = (now_ms() - 3 * DAY_MS).div_euclid(60_000) * 60_000;
    seed_events(&store, [&tenant, &other.tenant_id], start_ms).await;

    let raw = events(&app, &tenant).await;
    let start = start_ms / 1000;
    let end = start + 3 * 86_400 + 60;
    usage_by_every_width_and_grouping(&app, &owner, &raw, start_ms).await;

    // Costs: per day, all endpoints, by project and line item.
    for groups in [&[][..], &["project_id", "line_item"][..]] {
        let group_query: String = groups.iter().map(|g| format!("&group_by[]={g}")).collect();
        let query = format!("start_time={start}&end_time={end}{group_query}");
        let mut want = reference(
            &raw,
            "",
            start_ms,
            DAY_MS,
            &groups
                .iter()
                .map(|g| if *g == "line_item" { "model" } else { *g })
                .collect::<Vec<_>>(),
        );
        for t in want.values_mut() {
            *t = [0, 0, 0, 0, t[4]];
        }
        let got = from_api(
            &app,
            &owner.access,
            "/v1/organization/costs",
            &query,
            groups,
        )
        .await;
        assert_eq!(got, want, "costs {query}");
    }
    // Filters.
    let query = format!(
        "start_time={start}&end_time={end}&bucket_width=1d&project_ids[]=proj_a&models[]=other-model&api_key_ids=key_1,key_2"
    );
    let filtered: Vec<UsageEvent> = raw
        .iter()
        .filter(|e| {
            e.project_id.as_deref() == Some("proj_a")
                && e.model == "other-model"
                && e.api_key_id.as_deref() != Some("key_3")
        })
        .cloned()
        .collect();
    let mut want = reference(&filtered, "completions", start_ms, DAY_MS, &[]);
    for t in want.values_mut() {
        t[4] = 0;
    }
    let got = from_api(
        &app,
        &owner.access,
        "/v1/organization/usage/completions",
        &query,
        &[],
    )
    .await;
    assert_eq!(got, want);

    // The other tenant sees only its own five-ish events.
    let theirs = from_api(
        &app,
        &other.access,
        "/v1/organization/usage/completions",
        &format!("start_time={start}&end_time={end}"),
        &[],
    )
    .await;
    let their_requests: i64 = theirs.values().map(|t| t[0]).sum();
    assert!(their_requests > 0 && their_requests <= 5, "{theirs:?}");

    access_and_bad_input(&app, &owner, start).await;
}

/// Sixty events of the first tenant and five of the second over three days from `start_ms`,
/// across two projects, three keys, two models and both endpoints; some rejected, some
/// cancelled.
async fn seed_events(store: &Store, tenants: [&TenantId; 2], start_ms: i64) {
    let projects = ["proj_a", "proj_b"];
    let keys = ["key_1", "key_2", "key_3"];
    let models = [DEFAULT_MODEL_ID, "other-model"];
    let mut n = 0;
    for (tenant_id, count) in [(tenants[0], 60), (tenants[1], 5)] {
        for i in 0..count {
            n += 1;
            let id = format!("req-{n}");
            // Spread over three days, several per minute sometimes.
            let started_ms = start_ms + (i as i64 * 4_001_003) % (3 * DAY_MS - 1);
            let u = NewUsage {
                request_id: id.clone(),
                http_request_id: None,
                tenant_id: tenant_id.clone(),
                project_id: Some(projects[i % 2].into()),
                api_key_id: Some(keys[i % 3].into()),
                endpoint: if i % 5 == 0 {
                    Endpoint::Embeddings
                } else {
                    Endpoint::Completions
                },
                model: models[(i / 2) % 2].to_owned(),
                prompt_tokens: 10 + i as u64,
                max_cost: Money::from_micros(1_000),
                instance_id: "gw_test".into(),
                started_ms,
                price_id: None,
            };
            if i % 13 == 7 {
                store.record_rejected_usage(&u).await.unwrap();
                continue;
            }
            store.admit_usage(&u, true).await.unwrap();
            let completion = if u.endpoint == Endpoint::Embeddings {
                0
            } else {
                i as u64 % 7
            };
            let f = FinalUsage {
                status: if i % 4 == 1 {
                    UsageStatus::Cancelled
                } else {
                    UsageStatus::Completed
                },
                prompt_tokens: u.prompt_tokens,
                cached_tokens: (i as u64) % 3,
                completion_tokens: completion,
                ttft_ms: Some(5),
                latency_ms: Some(10),
                cost: Money::from_micros(3 + i as i64),
                finished_ms: started_ms + 10,
            };
            assert!(store.finalize_usage(&id, &f).await.unwrap());
        }
    }
}

/// Completions and embeddings usage, per minute, hour and day, under every grouping, equal
/// the reference sums of `raw`.
async fn usage_by_every_width_and_grouping(
    app: &TestApp,
    owner: &Session,
    raw: &[UsageEvent],
    start_ms: i64,
) {
    let start = start_ms / 1000;
    let end = start + 3 * 86_400 + 60;
    for (width, width_ms) in [("1m", 60_000), ("1h", 3_600_000), ("1d", DAY_MS)] {
        for groups in [
            &[][..],
            &["project_id"][..],
            &["api_key_id"][..],
            &["model"][..],
            &["project_id", "api_key_id", "model"][..],
        ] {
            let group_query: String = groups.iter().map(|g| format!("&group_by[]={g}")).collect();
            let limit = if width == "1m" { "&limit=1440" } else { "" };
            let query = format!(
                "start_time={start}&end_time={end}&bucket_width={width}{group_query}{limit}"
            );
            for (endpoint, path) in [
                ("completions", "/v1/organization/usage/completions"),
                ("embeddings", "/v1/organization/usage/embeddings"),
            ] {
                let mut want = reference(raw, endpoint, start_ms, width_ms, groups);
                if endpoint == "embeddings" {
                    for t in want.values_mut() {
                        t[2] = 0;
                        t[3] = 0;
                    }
                }
                for t in want.values_mut() {
                    t[4] = 0;
                }
                let got = from_api(app, &owner.access, path, &query, groups).await;
                assert_eq!(got, want, "{path} {query}");
            }
        }
    }
}

/// A project key needs `usage.read` and with it sees its own project only; bad input names
/// the field.
async fn access_and_bad_input(app: &TestApp, owner: &Session, start: i64) {
    let project = app.default_project(&owner.access).await;
    let (_, inference_only) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let q = format!("/v1/organization/usage/completions?start_time={start}");
    app.get(&q, Some(&inference_only))
        .await
        .expect_error(403, None);
    let (_, reader) = app
        .create_key(&owner.access, &project, &["usage:read"])
        .await;
    let body = app.get(&q, Some(&reader)).await.expect(200);
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["results"].as_array().unwrap().is_empty()));
    // Bad input names the field.
    app.get(
        "/v1/organization/usage/completions?start_time=10&bucket_width=2h",
        Some(&owner.access),
    )
    .await
    .expect_error(400, Some("bucket_width"));
    app.get("/v1/organization/usage/completions", Some(&owner.access))
        .await
        .expect_error(400, Some("start_time"));
    app.get(
        &format!("/v1/organization/costs?start_time={start}&bucket_width=1h"),
        Some(&owner.access),
    )
    .await
    .expect_error(400, Some("bucket_width"));
}

on_both_backends!(usage_api_totals_equal_raw_events);
