//! Rate limits in process (one app) and through Redis (several apps sharing one Redis, as
//! replicas do): which limit applies, the headers, refusals, token correction, concurrency
//! leases, and what happens when Redis is down.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use engine::model_cache::DefaultModel;
use gateway::config::RedisFailure;
use gateway::AppState;
use serde_json::{json, Value};

use crate::support::{served_model, Backend, Resp, Session, TestApp};

pub fn redis_url() -> String {
    std::env::var("STARFIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis key prefix of its own for one test, and the guard that deletes its keys.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        RedisPrefix(format!(
            "starfire-test:{}:",
            gateway::auth::secret::random_base62(12)
        ))
    }

    fn connection() -> redis::Connection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_connection()
            .expect("Redis must be reachable (STARFIRE_TEST_REDIS_URL)")
    }

    /// Every key under the prefix.
    pub fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut Self::connection())
            .unwrap()
    }

    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(format!("{}{key}", self.0))
            .arg(field)
            .query(&mut Self::connection())
            .unwrap()
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut Self::connection());
        }
    }
}

/// The app's state with a different rate-limit configuration (a new limiter) and the model.
fn reconfigure(app: &TestApp, change: impl FnOnce(&mut gateway::Config)) -> AppState {
    let mut config = (*app.state.config).clone();
    change(&mut config);
    AppState::new(app.state.store.clone(), config).with_inference(served_model())
}

async fn tokenize(app: &TestApp, key: &str) -> Resp {
    app.post(
        "/v1/tokenize",
        Some(key),
        json!({"model": DefaultModel::NAME, "prompt": "Hello"}),
    )
    .await
}

fn header(resp: &Resp, name: &str) -> u64 {
    resp.header(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {:?} in {:?}", resp.header(name), resp.headers))
}

/// A 429 as OpenAI sends it: `rate_limit_exceeded`, the type of limit, `Retry-After`, headers.
#[track_caller]
pub fn assert_refused(resp: Resp, kind: &str) {
    let retry: u64 = resp.header("retry-after").parse().expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    for name in [
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(!resp.header(name).is_empty(), "{name} missing");
    }
    let error = resp.expect_error(429, None);
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], kind);
}

async fn create_key(app: &TestApp, token: &str, project: &str, limits: Value) -> (String, String) {
    let body = app
        .post(
            &format!("/v1/organization/projects/{project}/api_keys"),
            Some(token),
            json!({"name": "limited", "limits": limits}),
        )
        .await
        .expect(201);
    (
        body["id"].as_str().unwrap().to_owned(),
        body["value"].as_str().unwrap().to_owned(),
    )
}

/// Key override > project override > plan default, each counted where it was set; and the
/// control plane sets and validates them.
async fn overrides_take_precedence(app: TestApp) {
    let app = app.with_model();
    let owner = app.signup("limits@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (key_a_id, key_a) = create_key(&app, &owner.access, &project, json!({"rpm": 2})).await;
    let (_, key_b) = create_key(&app, &owner.access, &project, json!({})).await;
    let (_, key_c) = create_key(&app, &owner.access, &project, json!({})).await;
    let body = app
        .post(
            &format!("/v1/organization/projects/{project}"),
            Some(&owner.access),
            json!({"limits": {"rpm": 3, "tpm": 5000}}),
        )
        .await
        .expect(200);
    assert_eq!(
        body["limits"],
        json!({"rpm": 3, "tpm": 5000, "concurrency": null})
    );

    // The key's own limit, on its own counter.
    for remaining in [1, 0] {
        let resp = tokenize(&app, &key_a).await;
        assert_eq!(header(&resp, "x-ratelimit-limit-requests"), 2);
        assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), remaining);
        assert_eq!(
            header(&resp, "x-ratelimit-limit-tokens"),
            5000,
            "tpm from the project"
        );
        resp.expect(200);
    }
    assert_refused(tokenize(&app, &key_a).await, "requests");

    // Keys without their own limit share the project's counter.
    for _ in 0..2 {
        tokenize(&app, &key_b).await.expect(200);
    }
    let resp = tokenize(&app, &key_c).await;
    assert_eq!(header(&resp, "x-ratelimit-limit-requests"), 3);
    assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), 0);
    resp.expect(200);
    assert_refused(tokenize(&app, &key_b).await, "requests");

    // Another project without overrides: the free plan's default.
    let other = app
        .post(
            "/v1/organization/projects",
            Some(&owner.access),
            json!({"name": "other"}),
        )
        .await
        .expect(201);
    assert_eq!(
        other["limits"],
        json!({"rpm": null, "tpm": null, "concurrency": null})
    );
    let other = other["id"].as_str().unwrap();
    let (_, key_d) = create_key(&app, &owner.access, other, json!({})).await;
    let resp = tokenize(&app, &key_d).await;
    let free = gateway::limits::PlanLimits::of(gateway::store::tenants::Plan::Free);
    assert_eq!(header(&resp, "x-ratelimit-limit-requests"), free.rpm);
    assert_eq!(header(&resp, "x-ratelimit-limit-tokens"), free.tpm);
    resp.expect(200);

    // Raising the key's limit applies at once, on the same counter.
    let body = app
        .post(
            &format!("/v1/organization/projects/{project}/api_keys/{key_a_id}"),
            Some(&owner.access),
            json!({"limits": {"rpm": 5, "concurrency": 2}}),
        )
        .await
        .expect(200);
    assert_eq!(
        body["limits"],
        json!({"rpm": 5, "tpm": null, "concurrency": 2})
    );
    let resp = tokenize(&app, &key_a).await;
    assert_eq!(header(&resp, "x-ratelimit-limit-requests"), 5);
    assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), 2);
    resp.expect(200);
    let got = app
        .get(
            &format!("/v1/organization/projects/{project}/api_keys/{key_a_id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(got["limits"]["rpm"], 5);

    bad_limits_are_refused(&app, &owner, &project, &key_a_id, &key_b).await;
}

/// Bad limits name the field; unknown fields are refused; an inference key cannot change
/// limits.
async fn bad_limits_are_refused(
    app: &TestApp,
    owner: &Session,
    project: &str,
    key_id: &str,
    key_b: &str,
) {
    let project_path = format!("/v1/organization/projects/{project}");
    let key_path = format!("{project_path}/api_keys/{key_id}");
    // Limits are an object, never read positionally from an array; a body is an object.
    app.post(
        &project_path,
        Some(&owner.access),
        json!({"limits": [null, null], "name": null}),
    )
    .await
    .expect_error(400, Some("limits"));
    app.post(&project_path, Some(&owner.access), json!([null, null]))
        .await
        .expect_error(400, None);
    app.post(
        &key_path,
        Some(&owner.access),
        json!({"limits": {"rpm": 0}}),
    )
    .await
    .expect_error(422, Some("limits.rpm"));
    app.post(
        &project_path,
        Some(&owner.access),
        json!({"limits": {"concurrency": -1}}),
    )
    .await
    .expect_error(422, Some("limits.concurrency"));
    app.post(
        &project_path,
        Some(&owner.access),
        json!({"limits": {"rpd": 1}}),
    )
    .await
    .expect_error(400, None);
    // Naming no field changes nothing: the project as it is.
    let unchanged = app
        .post(&project_path, Some(&owner.access), json!({}))
        .await
        .expect(200);
    assert_eq!(unchanged["limits"]["rpm"], 3);
    // An inference key cannot change limits.
    app.post(&key_path, Some(key_b), json!({"limits": {"rpm": 1000}}))
        .await
        .expect_error(403, None);
}

on_both_backends!(overrides_take_precedence);

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": DefaultModel::NAME,
        "messages": [{"role": "user", "content": "Write a long story about a cat."}],
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Admission reserves prompt + max_tokens; the end corrects it to the real usage.
#[actix_web::test]
async fn tokens_are_reserved_then_corrected_and_every_response_has_the_headers() {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("tpm@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = create_key(&app, &owner.access, &project, json!({"tpm": 2000})).await;

    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"max_tokens": 100, "stop": [" "]})),
        )
        .await;
    let remaining_at_admission = header(&resp, "x-ratelimit-remaining-tokens");
    assert_eq!(header(&resp, "x-ratelimit-limit-tokens"), 2000);
    let body = resp.expect(200);
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
    let total = body["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(
        remaining_at_admission,
        2000 - prompt - 100,
        "prompt + max_tokens reserved"
    );
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() < 100,
        "{body}"
    );
    // The next request sees the real count.
    let resp = tokenize(&app, &key).await;
    assert_eq!(header(&resp, "x-ratelimit-remaining-tokens"), 2000 - total);

    // Streaming responses carry the headers too.
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"max_tokens": 3, "stream": true})),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(header(&resp, "x-ratelimit-limit-tokens"), 2000);
    assert!(!resp.header("x-ratelimit-reset-tokens").is_empty());

    // A request larger than the whole limit is refused (no waiting would help).
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"max_tokens": 2000})),
        )
        .await;
    assert_eq!(resp.header("retry-after"), "");
    let err = resp.expect_error(429, None);
    assert_eq!(err["type"], "tokens");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Request too large"),
        "{err}"
    );
}

/// A streaming client that goes away frees its concurrency slot at once.
#[actix_web::test]
async fn concurrency_is_released_when_the_client_disconnects() {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("con@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = create_key(&app, &owner.access, &project, json!({"concurrency": 1})).await;
    let service =
        actix_web::test::init_service(gateway::app_with(app.state.clone(), ::console::configure))
            .await;
    let request = || {
        actix_web::test::TestRequest::post()
            .uri("/v1/chat/completions")
            .insert_header(("authorization", format!("Bearer {key}")))
            .set_json(chat(
                json!({"stream": true, "max_tokens": 500, "ignore_eos": true}),
            ))
            .to_request()
    };
    let first = actix_web::test::call_service(&service, request()).await;
    assert_eq!(first.status().as_u16(), 200);
    let mut body = Box::pin(first.into_body());
    let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
    assert!(chunk.is_some());

    let second = actix_web::test::call_service(&service, request()).await;
    assert_eq!(second.status().as_u16(), 429);
    assert_eq!(second.headers().get("retry-after").unwrap(), "1");
    let err: Value = actix_web::test::read_body_json(second).await;
    assert_eq!(err["error"]["type"], "requests");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent"));

    drop(body);
    let third = actix_web::test::call_service(&service, request()).await;
    assert_eq!(third.status().as_u16(), 200, "the slot was released");
    drop(third);
    assert_eq!(
        app.state.limits.counters().snapshot().refused_concurrency,
        1
    );
}

/// Redis on a closed port: `closed` refuses with 503 at once, `local` counts in process.
#[actix_web::test]
async fn redis_down_fails_closed_or_falls_back_to_local_limits() {
    let app = TestApp::new(Backend::Sqlite).await;
    let owner = app.signup("down@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = create_key(&app, &owner.access, &project, json!({"rpm": 2})).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = |mode| {
        reconfigure(&app, |c| {
            c.redis_url = Some(format!("redis://127.0.0.1:{closed_port}"));
            c.rate_limit_redis_failure = mode;
            c.redis_timeout_ms = 200;
        })
    };

    let closed = app.sharing(down(RedisFailure::Closed));
    assert_eq!(
        scrape(&closed, "starfire_rate_limit_unavailable_total").await,
        0
    );
    let started = Instant::now();
    let resp = tokenize(&closed, &key).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(resp.header("retry-after"), "1");
    let err = resp.expect_error(503, None);
    assert_eq!(err["code"], "rate_limiter_unavailable");
    assert!(!err["message"].as_str().unwrap().contains("127.0.0.1"));
    let counters = closed.state.limits.counters().snapshot();
    assert_eq!((counters.unavailable, counters.redis_errors), (1, 1));
    assert_eq!(
        scrape(&closed, "starfire_rate_limit_unavailable_total").await,
        1
    );
    assert_eq!(
        scrape(&closed, "starfire_rate_limit_redis_errors_total").await,
        1
    );

    let local = app.sharing(down(RedisFailure::Local));
    for _ in 0..2 {
        let resp = tokenize(&local, &key).await;
        assert_eq!(header(&resp, "x-ratelimit-limit-requests"), 2);
        resp.expect(200);
    }
    assert_refused(tokenize(&local, &key).await, "requests");
    let counters = local.state.limits.counters().snapshot();
    assert_eq!(counters.local_fallbacks, 3);
    assert_eq!(counters.refused_requests, 1);
    // The same, as Prometheus scrapes it.
    for (series, value) in [
        ("starfire_rate_limit_local_fallbacks_total", 3),
        ("starfire_rate_limit_redis_errors_total", 3),
        ("starfire_rate_limit_refusals_total{kind=\"requests\"}", 1),
        ("starfire_rate_limit_refusals_total{kind=\"tokens\"}", 0),
        ("starfire_rate_limit_unavailable_total", 0),
    ] {
        assert_eq!(scrape(&local, series).await, value, "{series}");
    }
}

/// The value of one series in `/metrics`.
async fn scrape(app: &TestApp, series: &str) -> u64 {
    let resp = app.get("/metrics", None).await;
    assert_eq!(resp.status.as_u16(), 200);
    let text = resp.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Two app instances (replicas) on one Redis share the limits; settlement reaches Redis.
#[actix_web::test]
async fn replicas_share_limits_through_redis() {
    let prefix = RedisPrefix::new();
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("shared@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (key_id, key) = create_key(
        &app,
        &owner.access,
        &project,
        json!({"rpm": 4, "tpm": 1000}),
    )
    .await;
    let replica = || {
        reconfigure(&app, |c| {
            c.redis_url = Some(redis_url());
            c.rate_limit_key_prefix = prefix.0.clone();
            c.rate_limit_redis_failure = RedisFailure::Closed;
        })
    };
    let replicas = [app.sharing(replica()), app.sharing(replica())];
    let completion = json!({
        "model": DefaultModel::NAME, "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "max_tokens": 40, "stop": [" "], "temperature": 0,
    });
    // Reserved 49; used 9 + what was generated before the first space.
    let resp = replicas[0]
        .post("/v1/completions", Some(&key), completion.clone())
        .await;
    assert_eq!(header(&resp, "x-ratelimit-remaining-tokens"), 1000 - 49);
    let body = resp.expect(200);
    let used = body["usage"]["total_tokens"].as_u64().unwrap();
    let tokens_key = format!("k:{key_id}:tpm:c");
    let deadline = Instant::now() + Duration::from_secs(5);
    while prefix.hget(&tokens_key, "#total") != Some(used.to_string()) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            prefix.hget(&tokens_key, "#total")
        );
        // Settlement runs on this runtime: let it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut accepted = 1;
    for i in 0..6 {
        let resp = tokenize(&replicas[i % 2], &key).await;
        if resp.status.as_u16() == 200 {
            accepted += 1;
            assert_eq!(header(&resp, "x-ratelimit-remaining-tokens"), 1000 - used);
        } else {
            assert_refused(resp, "requests");
        }
    }
    assert_eq!(accepted, 4, "one limit across both replicas");
    assert!(!prefix.keys().is_empty());
    for r in &replicas {
        assert_eq!(r.state.limits.counters().snapshot().redis_errors, 0);
    }
}
