//! The client against a scripted server: retries after 429 with the same Idempotency-Key,
//! the error kinds of a rate limit and a spent quota, pagination to the last page, and the
//! deployment routes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use starfire_sdk::*;

/// Any request: the scripted server answers without reading it.
fn one_token() -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: "m".into(),
        messages: vec![ChatMessage::user("Say hello.")],
        max_tokens: Some(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_ledger_follows_its_cursor_to_the_last_page() {
    let entry = |id: &str| {
        format!(
            r#"{{"id":"{id}","object":"billing.ledger_entry","kind":"usage","amount_micros":-1,"currency":"usd","created_at":1,"request_id":"r","payment_id":null,"actor":"system","reason":null,"refund_of":null}}"#
        )
    };
    let page = |ids: &[&str], has_more: bool| {
        let data: Vec<String> = ids.iter().map(|id| entry(id)).collect();
        format!(
            r#"{{"object":"list","data":[{}],"first_id":"{}","last_id":"{}","has_more":{has_more}}}"#,
            data.join(","),
            ids[0],
            ids[ids.len() - 1]
        )
    };
    let (url, seen) = scripted(vec![
        response("200 OK", "", &page(&["led_3", "led_2"], true)),
        response("200 OK", "", &page(&["led_1"], false)),
    ]);
    let ledger = Client::new("sf-x", url).list_ledger().await.unwrap();
    let ids: Vec<&str> = ledger.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["led_3", "led_2", "led_1"]);
    let targets: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(
        targets,
        [
            "/v1/billing/ledger?limit=100",
            "/v1/billing/ledger?limit=100&after=led_2"
        ]
    );
}

/// What the scripted server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// The request line's method, e.g. `GET`.
    method: String,
    /// The request line's target, e.g. `/v1/billing/ledger?limit=100`.
    target: String,
    idempotency_key: String,
    body: String,
}

/// A server that answers each connection with the next scripted response and records the
/// requests' targets and `Idempotency-Key`.
fn scripted(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for (stream, answer) in listener.incoming().zip(answers) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut key = String::new();
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if lower.starts_with("idempotency-key:") {
                    key = line["idempotency-key:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            record.lock().unwrap().push(Seen {
                method,
                target,
                idempotency_key: key,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    (url, seen)
}

fn response(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-request-id: req_fake\r\n\
         connection: close\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_retry_after_429_succeeds_with_the_same_idempotency_key() {
    let limited = r#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#;
    let ok = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","system_fingerprint":"f","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let (url, seen) = scripted(vec![
        response("429 Too Many Requests", "retry-after: 0\r\n", limited),
        response("200 OK", "", ok),
    ]);
    let completion = Client::new("sf-x", url)
        .chat_completion(one_token())
        .await
        .unwrap();
    assert_eq!(completion.choices[0].message.content.as_deref(), Some("hi"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].idempotency_key.is_empty());
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
}

#[tokio::test]
async fn rate_limits_and_quota_raise_their_kinds() {
    let limited = r#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#;
    let quota = r#"{"error":{"message":"no credit","type":"rate_limit_error","param":null,"code":"insufficient_quota"}}"#;
    let (url, seen) = scripted(vec![
        response(
            "429 Too Many Requests",
            "retry-after: 0\r\n",
            limited
        );
        2
    ]);
    let err = Client::new("sf-x", url)
        .with_max_retries(1)
        .chat_completion(one_token())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::RateLimit));
    assert_eq!(err.request_id(), Some("req_fake"));
    assert_eq!(seen.lock().unwrap().len(), 2);

    let (url, seen) = scripted(vec![response("429 Too Many Requests", "", quota); 3]);
    let err = Client::new("sf-x", url)
        .chat_completion(one_token())
        .await
        .unwrap_err();
    // A spent quota is not retried.
    assert_eq!(err.kind(), Some(ErrorKind::InsufficientQuota));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// A deployment as the server writes it, in `state`, with `replicas` `{"min": min, "max": 3}`.
fn deployment(id: &str, state: &str, min: i64) -> String {
    format!(
        r#"{{"id":"{id}","object":"deployment","name":"my-llm","model":"m","replicas":{{"min":{min},"max":3}},"target_replicas":{min},"ready_replicas":0,"hardware":"cpu","kv_cache_memory":67108864,"max_model_len":null,"overflow":"none","state":"{state}","status_message":null,"created_at":1,"updated_at":2}}"#
    )
}

#[tokio::test]
async fn deployments_call_their_routes_and_read_the_answers() {
    let events = r#"{"object":"list","data":[{"id":"depev_1","object":"deployment.event","from_state":null,"to_state":"requested","actor":"user:user_1","message":null,"created_at":1},{"id":"depev_2","object":"deployment.event","from_state":"requested","to_state":"provisioning","actor":"operator:ops","message":"approved","created_at":2}]}"#;
    let page = |ids: &[&str], has_more: bool| {
        let data: Vec<String> = ids.iter().map(|id| deployment(id, "ready", 1)).collect();
        format!(
            r#"{{"object":"list","data":[{}],"first_id":"{}","last_id":"{}","has_more":{has_more}}}"#,
            data.join(","),
            ids[0],
            ids[ids.len() - 1]
        )
    };
    let (url, seen) = scripted(vec![
        response("201 Created", "", &deployment("dep_1", "requested", 1)),
        response("200 OK", "", &page(&["dep_a", "dep_b"], true)),
        response("200 OK", "", &page(&["dep_c"], false)),
        response("200 OK", "", &deployment("dep_1", "ready", 1)),
        response("200 OK", "", &deployment("dep_1", "scaling", 2)),
        response("200 OK", "", &deployment("dep_1", "stopping", 2)),
        response("200 OK", "", &deployment("dep_1", "provisioning", 2)),
        response("200 OK", "", events),
        response("200 OK", "", &deployment("dep_1", "deleting", 2)),
    ]);
    let client = Client::new("sf-x", url);
    let created = client
        .create_deployment(&DeploymentCreate {
            name: "my-llm".into(),
            model: "m".into(),
            replicas: Some(ReplicaRange { min: 1, max: 3 }),
            overflow: Some("shared".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.state, "requested");
    assert_eq!(created.replicas, ReplicaRange { min: 1, max: 3 });
    assert_eq!(created.max_model_len, None);
    let all = client.list_deployments(true).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["dep_a", "dep_b", "dep_c"]);
    assert_eq!(client.get_deployment("dep_1").await.unwrap().state, "ready");
    let scaled = client
        .update_deployment_replicas("dep_1", ReplicaRange { min: 2, max: 3 })
        .await
        .unwrap();
    assert_eq!((scaled.state.as_str(), scaled.replicas.min), ("scaling", 2));
    assert_eq!(
        client.stop_deployment("dep_1").await.unwrap().state,
        "stopping"
    );
    assert_eq!(
        client.start_deployment("dep_1").await.unwrap().state,
        "provisioning"
    );
    let history = client.deployment_events("dep_1").await.unwrap();
    let steps: Vec<(Option<&str>, &str, &str)> = history
        .iter()
        .map(|e| {
            (
                e.from_state.as_deref(),
                e.to_state.as_str(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (None, "requested", "user:user_1"),
            (Some("requested"), "provisioning", "operator:ops")
        ]
    );
    assert_eq!(
        client.delete_deployment("dep_1").await.unwrap().state,
        "deleting"
    );

    let seen = seen.lock().unwrap();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.target.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/v1/organization/deployments"),
            (
                "GET",
                "/v1/organization/deployments?include_deleted=true&limit=100"
            ),
            (
                "GET",
                "/v1/organization/deployments?include_deleted=true&limit=100&after=dep_b"
            ),
            ("GET", "/v1/organization/deployments/dep_1"),
            ("POST", "/v1/organization/deployments/dep_1"),
            ("POST", "/v1/organization/deployments/dep_1/stop"),
            ("POST", "/v1/organization/deployments/dep_1/start"),
            ("GET", "/v1/organization/deployments/dep_1/events"),
            ("DELETE", "/v1/organization/deployments/dep_1"),
        ]
    );
    // Only the fields given are sent; the server fills in the rest.
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "my-llm", "model": "m", "replicas": {"min": 1, "max": 3}, "overflow": "shared"})
    );
    let body: serde_json::Value = serde_json::from_str(&seen[4].body).unwrap();
    assert_eq!(body, serde_json::json!({"replicas": {"min": 2, "max": 3}}));
    // Every POST carries an Idempotency-Key; the other methods none.
    for s in seen.iter() {
        assert_eq!(s.method == "POST", !s.idempotency_key.is_empty(), "{s:?}");
    }
}

#[tokio::test]
async fn deployments_without_deleted_ones_list_plainly() {
    let empty = r#"{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}"#;
    let (url, seen) = scripted(vec![response("200 OK", "", empty)]);
    let all = Client::new("sf-x", url)
        .list_deployments(false)
        .await
        .unwrap();
    assert!(all.is_empty());
    assert_eq!(
        seen.lock().unwrap()[0].target,
        "/v1/organization/deployments?limit=100"
    );
}
