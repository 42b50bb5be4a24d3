//! Three `starfire worker`s on 127.0.0.2, .3 and .4 behind two gateway replicas that share
//! PostgreSQL and Redis (each replica with its own pool and router, as two `starfire serve`s
//! would have): 200 mixed requests from ten organizations (chats plain and streamed, text
//! completions, embeddings) all succeed, each leaves its usage row, and every worker takes
//! between 20% and 47% of the generations.

use std::time::Duration;

use futures_util::future::join_all;
use gateway::registry::{ModelEntry, WorkerSettings, DEFAULT_MODEL_ID};
use gateway::server::AppState;
use gateway::store::usage::UsageStatus;
use serde_json::{json, Value};

use crate::metering::events;
use crate::rate_limits::{redis_url, RedisPrefix};
use crate::rate_limits_e2e::{free_port, Server};
use crate::support::{Backend, TestApp};
use crate::workers::{finished_at, start_worker_at, TOKEN};

const REQUESTS: usize = 200;
const ORGANIZATIONS: usize = 10;
const CONCURRENCY: usize = 8;

/// The `i`th request: a distinct prompt of some 60 tokens, so that no two share more than the
/// chat template's header and the router spreads them by load.
fn request(i: usize) -> (&'static str, Value) {
    const WORDS: [&str; 12] = [
        "river", "stone", "light", "garden", "engine", "market", "winter", "signal", "forest",
        "harbor", "copper", "violet",
    ];
    let words: Vec<&str> = (0..40)
        .map(|k| WORDS[(i * 7 + k * (i % 5 + 1)) % 12])
        .collect();
    let text = format!("Request {i}: {}.", words.join(" "));
    match i % 4 {
        0 | 1 => (
            "/v1/chat/completions",
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": text}],
                   "max_tokens": 4, "temperature": 0, "stream": i % 4 == 1,
                   "stream_options": if i % 4 == 1 { json!({"include_usage": true}) } else { Value::Null }}),
        ),
        2 => (
            "/v1/completions",
            json!({"model": DEFAULT_MODEL_ID, "prompt": text, "max_tokens": 4, "temperature": 0}),
        ),
        _ => (
            "/v1/embeddings",
            json!({"model": DEFAULT_MODEL_ID, "input": text}),
        ),
    }
}

/// A replica of `app`'s gateway (same database, Redis for shared limits) with its own pool
/// over `urls`.
fn replica(app: &TestApp, urls: &[String], prefix: &RedisPrefix) -> AppState {
    let mut config = (*app.state.config).clone();
    config.redis_url = Some(redis_url());
    config.rate_limit_key_prefix = prefix.0.clone();
    let entry = ModelEntry {
        workers: urls.to_vec(),
        ..ModelEntry::from_model_path(None)
    };
    let settings = WorkerSettings {
        token: Some(TOKEN.to_owned()),
        ..Default::default()
    };
    let pool = gateway::registry::load(
        &[entry],
        gateway::registry::KvCacheMemory::set(64 << 20),
        &Default::default(),
        &settings,
    )
    .expect("a pool over the workers");
    AppState::new(app.state.store.clone(), config).with_inference(pool)
}

#[actix_web::test]
async fn three_workers_share_two_gateways_traffic() {
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let workers: Vec<(Server, String, u16)> = homes
        .iter()
        .zip(2..)
        .map(|(home, last)| {
            let host = format!("127.0.0.{last}");
            let (worker, port) = start_worker_at(home.path(), &host, free_port());
            (worker, host, port)
        })
        .collect();
    let urls: Vec<String> = workers
        .iter()
        .map(|(_, host, port)| format!("http://{host}:{port}"))
        .collect();
    let before: Vec<f64> = workers
        .iter()
        .map(|(_, host, port)| finished_at(host, *port))
        .collect();

    let app = TestApp::new(Backend::Postgres).await;
    let prefix = RedisPrefix::new();
    let gateways = [
        app.sharing(replica(&app, &urls, &prefix)),
        app.sharing(replica(&app, &urls, &prefix)),
    ];
    let mut keys = Vec::new();
    let mut tenants = Vec::new();
    for org in 0..ORGANIZATIONS {
        let owner = app.signup(&format!("spread-{org}@example.com")).await;
        let project = app.default_project(&owner.access).await;
        let (_, key) = app
            .create_key(&owner.access, &project, &["inference"])
            .await;
        keys.push(key);
        tenants.push(owner.tenant_id);
    }

    for batch in (0..REQUESTS).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let answers = join_all(batch.iter().map(|&i| {
            let (path, body) = request(i);
            let gateway = &gateways[i % 2];
            let key = &keys[i % ORGANIZATIONS];
            async move { (i, gateway.post(path, Some(key), body).await) }
        }))
        .await;
        for (i, answer) in answers {
            assert_eq!(answer.status.as_u16(), 200, "request {i}: {}", answer.body);
        }
    }

    // Every request left one final usage row.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut rows = Vec::new();
        for tenant in &tenants {
            rows.extend(events(&app, tenant).await);
        }
        if rows.len() == REQUESTS && rows.iter().all(|r| r.status == UsageStatus::Completed) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} rows, {} completed",
            rows.len(),
            rows.iter()
                .filter(|r| r.status == UsageStatus::Completed)
                .count()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    // The generations spread over the three workers.
    let served: Vec<f64> = workers
        .iter()
        .zip(&before)
        .map(|((_, host, port), b)| finished_at(host, *port) - b)
        .collect();
    let generations: f64 = served.iter().sum();
    assert_eq!(generations as usize, REQUESTS * 3 / 4, "{served:?}");
    let shares: Vec<f64> = served.iter().map(|s| s / generations).collect();
    eprintln!("generations per worker: {served:?}, shares {shares:?}");
    for share in &shares {
        assert!((0.20..=0.47).contains(share), "shares {shares:?}");
    }
    drop(workers);
}
