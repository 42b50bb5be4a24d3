//! CORS for the API: off until a project lists origins; preflights answered by origin; a
//! project key works from its own project's origins only; admin keys and sessions never from
//! another origin; the WebSocket handshake follows the same rules; and a real headless browser
//! on another origin calls the API (preflight included) only once its origin is allowed.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::support::{Backend, LiveServer, Resp, TestApp};

on_both_backends!(
    origins_are_refused_until_the_project_allows_them,
    websocket_handshakes_follow_the_origin_rules,
);

const DEMO: &str = "https://demo.example";
const EVIL: &str = "https://evil.example";

/// `method path` from a page of `origin` (the server calls itself `api.example`).
async fn from_origin(
    app: &TestApp,
    method: Method,
    path: &str,
    origin: &str,
    token: Option<&str>,
) -> Resp {
    let mut req = TestRequest::default()
        .method(method)
        .uri(path)
        .insert_header(("host", "api.example"))
        .insert_header(("origin", origin))
        .peer_addr("127.0.0.1:40000".parse().unwrap());
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    app.call(req).await
}

/// A browser's preflight for `POST path` with the OpenAI SDK's headers.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> Resp {
    app.call(
        TestRequest::default()
            .method(Method::OPTIONS)
            .uri(path)
            .insert_header(("host", "api.example"))
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "authorization, content-type, x-stainless-os",
            )),
    )
    .await
}

fn refused_for_origin(resp: Resp) -> Value {
    let error = resp.expect_error(403, None);
    assert_eq!(error["code"], "origin_not_allowed", "{error}");
    error
}

async fn origins_are_refused_until_the_project_allows_them(app: TestApp) {
    let app = app.with_model();
    let owner = app.signup("cors@example.com").await;
    let t = Some(owner.access.as_str());
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let (_, admin) = app.create_admin_key(&owner.access).await;

    // Off by default: a new project allows no origin.
    let fresh = app
        .get(&format!("/v1/organization/projects/{project}"), t)
        .await;
    assert_eq!(fresh.expect(200)["allowed_origins"], json!([]));
    let pre = preflight(&app, "/v1/chat/completions", DEMO).await;
    assert!(pre.header("access-control-allow-origin").is_empty());
    refused_for_origin(pre);
    let resp = from_origin(&app, Method::GET, "/v1/models", DEMO, Some(&key)).await;
    assert!(resp.header("access-control-allow-origin").is_empty());
    refused_for_origin(resp);
    // Servers (no Origin) and the server's own pages (same origin) are not affected.
    app.get("/v1/models", Some(&key)).await.expect(200);
    from_origin(
        &app,
        Method::GET,
        "/v1/models",
        "https://api.example",
        Some(&key),
    )
    .await
    .expect(200);

    // Bad lists are refused, naming the field.
    for bad in [
        json!(["demo.example"]),
        json!(["https://demo.example/app"]),
        json!(["*"]),
        json!((0..21)
            .map(|i| format!("https://d{i}.example"))
            .collect::<Vec<_>>()),
    ] {
        app.post(
            &format!("/v1/organization/projects/{project}"),
            t,
            json!({"allowed_origins": bad}),
        )
        .await
        .expect_error(422, Some("allowed_origins"));
    }
    // Allowed, normalized as browsers send origins.
    let updated = app
        .post(
            &format!("/v1/organization/projects/{project}"),
            t,
            json!({"allowed_origins": ["https://Demo.example/", "http://localhost:5173", DEMO]}),
        )
        .await
        .expect(200);
    assert_eq!(
        updated["allowed_origins"],
        json!([DEMO, "http://localhost:5173"])
    );

    // The preflight now gets what the browser asked for.
    let pre = preflight(&app, "/v1/chat/completions", DEMO).await;
    assert_eq!(pre.status.as_u16(), 204, "{:?}", pre.body);
    assert_eq!(pre.header("access-control-allow-origin"), DEMO);
    assert!(pre.header("access-control-allow-methods").contains("POST"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        "authorization, content-type, x-stainless-os"
    );
    assert_eq!(pre.header("access-control-max-age"), "600");
    assert!(pre.header("vary").contains("Origin"));
    assert!(pre.header("access-control-allow-credentials").is_empty());
    assert_eq!(pre.header("x-content-type-options"), "nosniff");

    // The key's requests from the allowed origin work, and the page may read them.
    let ok = from_origin(&app, Method::GET, "/v1/models", DEMO, Some(&key)).await;
    assert_eq!(ok.header("access-control-allow-origin"), DEMO);
    assert!(ok
        .header("access-control-expose-headers")
        .contains("x-request-id"));
    assert!(ok.header("vary").contains("Origin"));
    assert_eq!(ok.expect(200)["object"], "list");
    let chat = app
        .call(
            TestRequest::post()
                .uri("/v1/chat/completions")
                .insert_header(("host", "api.example"))
                .insert_header(("origin", DEMO))
                .insert_header(("authorization", format!("Bearer {key}")))
                .set_json(json!({
                    "model": gateway::registry::DEFAULT_MODEL_ID,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 2,
                })),
        )
        .await;
    assert_eq!(chat.header("access-control-allow-origin"), DEMO);
    chat.expect(200);

    // Another origin: no preflight, no request.
    refused_for_origin(preflight(&app, "/v1/chat/completions", EVIL).await);
    let resp = from_origin(&app, Method::GET, "/v1/models", EVIL, Some(&key)).await;
    assert!(resp.header("access-control-allow-origin").is_empty());
    refused_for_origin(resp);
    refused_for_origin(from_origin(&app, Method::GET, "/v1/models", "null", Some(&key)).await);

    // Admin keys and console sessions never work from another origin, allowed or not (the
    // page may read why: the origin is allowed somewhere).
    let resp = from_origin(
        &app,
        Method::GET,
        "/v1/organization/projects",
        DEMO,
        Some(&admin),
    )
    .await;
    assert_eq!(resp.header("access-control-allow-origin"), DEMO);
    refused_for_origin(resp);
    refused_for_origin(from_origin(&app, Method::GET, "/v1/organization/projects", DEMO, t).await);

    // Another project of the organization, and another organization, do not inherit them.
    let other = app
        .post("/v1/organization/projects", t, json!({"name": "Other"}))
        .await
        .expect(201);
    assert_eq!(other["allowed_origins"], json!([]));
    let (_, other_key) = app
        .create_key(&owner.access, other["id"].as_str().unwrap(), &["inference"])
        .await;
    refused_for_origin(from_origin(&app, Method::GET, "/v1/models", DEMO, Some(&other_key)).await);
    let stranger = app.signup("stranger@example.com").await;
    let stranger_project = app.default_project(&stranger.access).await;
    let (_, stranger_key) = app
        .create_key(&stranger.access, &stranger_project, &["inference"])
        .await;
    refused_for_origin(
        from_origin(&app, Method::GET, "/v1/models", DEMO, Some(&stranger_key)).await,
    );

    // A project created with origins has them; the console's pages never get CORS headers.
    let created = app
        .post(
            "/v1/organization/projects",
            t,
            json!({"name": "Demo 2", "allowed_origins": ["https://two.example"]}),
        )
        .await
        .expect(201);
    assert_eq!(created["allowed_origins"], json!(["https://two.example"]));
    let page = from_origin(&app, Method::GET, "/", DEMO, None).await;
    assert!(page.header("access-control-allow-origin").is_empty());

    // Turning CORS off again, or archiving the project, ends it at once on this replica.
    app.post(
        &format!("/v1/organization/projects/{project}"),
        t,
        json!({"allowed_origins": []}),
    )
    .await
    .expect(200);
    refused_for_origin(preflight(&app, "/v1/chat/completions", DEMO).await);
    let two = created["id"].as_str().unwrap();
    let pre = preflight(&app, "/v1/models", "https://two.example").await;
    assert_eq!(pre.status.as_u16(), 204);
    app.post(
        &format!("/v1/organization/projects/{two}/archive"),
        t,
        json!({}),
    )
    .await
    .expect(200);
    refused_for_origin(preflight(&app, "/v1/models", "https://two.example").await);
}

/// The handshake's status and error code, or 101.
async fn handshake(
    server: &LiveServer,
    query: &str,
    key: Option<&str>,
    origin: &str,
) -> (u16, Value) {
    let url = format!("ws://127.0.0.1:{}/v1/chat/ws{query}", server.port);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, response)) => {
            let _ = ws.close(None).await;
            (response.status().as_u16(), Value::Null)
        }
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(other) => panic!("handshake: {other}"),
    }
}

/// A single-use WebSocket ticket of `token`, as the query string that redeems it.
async fn ticket(app: &TestApp, token: &str) -> String {
    let made = app
        .post("/v1/ws/tickets", Some(token), json!({}))
        .await
        .expect(200);
    format!("?ticket={}", made["ticket"].as_str().unwrap())
}

async fn websocket_handshakes_follow_the_origin_rules(app: TestApp) {
    let app = app.with_model();
    let owner = app.signup("ws-cors@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.post(
        &format!("/v1/organization/projects/{project}"),
        Some(&owner.access),
        json!({"allowed_origins": [DEMO]}),
    )
    .await
    .expect(200);
    let server = app.serve();
    // A page of another origin cannot open a socket with a ticket it got hold of.
    let (status, body) = handshake(&server, &ticket(&app, &key).await, None, EVIL).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    // Its own project's origin can; and so can the key itself.
    let (status, _) = handshake(&server, &ticket(&app, &key).await, None, DEMO).await;
    assert_eq!(status, 101);
    let (status, _) = handshake(&server, "", Some(&key), DEMO).await;
    assert_eq!(status, 101);
    let (status, _) = handshake(&server, "", Some(&key), EVIL).await;
    assert_eq!(status, 403);
    // A console session's ticket is for the console's own pages only.
    let query = ticket(&app, &owner.access).await;
    let (status, _) = handshake(&server, &query, None, DEMO).await;
    assert_eq!(status, 403);
}

/// A real browser: a page served from another origin calls the API with `fetch` (an
/// Authorization header, so a preflight first). Refused until the key's project lists the
/// page's origin, then answered and readable.
#[actix_web::test]
async fn a_page_of_an_allowed_origin_calls_the_api_from_chromium() {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("browser-cors@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let api = app.serve();
    // The demo page's own server: another port is another origin.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page_port = listener.local_addr().unwrap().port();
    let page = actix_web::HttpServer::new(|| {
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(|| async {
                actix_web::HttpResponse::Ok()
                    .content_type("text/html")
                    .body("<!doctype html><title>demo</title><p>demo</p>")
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let page_handle = page.handle();
    actix_web::rt::spawn(page);

    let (client, _driver) = crate::console_browser::headless_chromium().await;
    client
        .goto(&format!("http://127.0.0.1:{page_port}/"))
        .await
        .unwrap();
    let call = || async {
        client
            .execute_async(
                r#"const [url, key, done] = arguments;
                fetch(url, {method: "POST", headers: {"Authorization": "Bearer " + key,
                    "Content-Type": "application/json"},
                    body: JSON.stringify({model: "smollm2-135m-instruct", max_tokens: 3,
                        messages: [{role: "user", content: "Hi"}]})})
                  .then(r => r.json().then(body => done({status: r.status,
                      request_id: r.headers.get("x-request-id"), body})))
                  .catch(e => done({error: String(e)}));"#,
                vec![
                    json!(format!("http://127.0.0.1:{}/v1/chat/completions", api.port)),
                    json!(key),
                ],
            )
            .await
            .unwrap()
    };
    let refused = call().await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Failed to fetch"),
        "{refused}"
    );
    app.post(
        &format!("/v1/organization/projects/{project}"),
        Some(&owner.access),
        json!({"allowed_origins": [format!("http://127.0.0.1:{page_port}")]}),
    )
    .await
    .expect(200);
    let answered = call().await;
    assert_eq!(answered["status"], 200, "{answered}");
    assert_eq!(answered["body"]["object"], "chat.completion", "{answered}");
    assert!(
        answered["request_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("req_"),
        "exposed headers are readable: {answered}"
    );
    let _ = client.close().await;
    page_handle.stop(false).await;
}
