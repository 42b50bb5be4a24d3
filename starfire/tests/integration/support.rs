//! Test harness: a fresh database per test (a temporary SQLite file, or a new PostgreSQL
//! schema), the app in-process, and small request helpers.

use actix_web::http::{Method, StatusCode};
use actix_web::test;
use gateway::store::TenantId;
use serde_json::{json, Value};

use std::sync::{Arc, OnceLock};

use gateway::config::Config;
use gateway::inference::InProcessBackend;
use gateway::{AppState, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(TestApp)` once per backend: `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name(crate::support::TestApp::new(crate::support::Backend::Sqlite).await).await
            }
            #[actix_web::test]
            async fn postgres() {
                super::$name(crate::support::TestApp::new(crate::support::Backend::Postgres).await).await
            }
        }
    )*};
}

pub fn postgres_url() -> String {
    std::env::var("STARFIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A URL to a new, empty database (a temporary SQLite file, or a new PostgreSQL schema through
/// `search_path`), and the guard that removes it when dropped.
pub async fn fresh_database(backend: Backend) -> (String, DbGuard) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            (
                format!("sqlite://{}", dir.path().join("test.db").display()),
                DbGuard::Sqlite(dir),
            )
        }
        Backend::Postgres => {
            let schema = format!(
                "sf_test_{}",
                gateway::auth::secret::random_base62(16).to_lowercase()
            );
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&postgres_url())
                .await
                .expect("PostgreSQL must be reachable (STARFIRE_TEST_DATABASE_URL)");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .expect("create schema");
            conn.close().await.ok();
            let base = postgres_url();
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                // The schema's name is also the connections' application name, so that the
                // guard can end the ones a test left open (see `DbGuard`).
                format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"),
                DbGuard::Postgres { schema },
            )
        }
    }
}

/// Removes what a test's database left behind.
pub enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { schema: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { schema } = self {
            let schema = schema.clone();
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    sqlx::any::install_default_drivers();
                    if let Ok(mut conn) = sqlx::AnyConnection::connect(&postgres_url()).await {
                        // A connection the test's runtime abandoned mid-transaction (its
                        // task was dropped at shutdown) would hold locks forever and make
                        // DROP SCHEMA wait on them: end this schema's connections first.
                        let _ = sqlx::query(&format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
                        ))
                        .execute(&mut conn)
                        .await;
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                        let _ = conn.close().await;
                    }
                })
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub state: AppState,
    _db: Arc<DbGuard>,
}

/// A response, its body parsed as JSON (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self.body
    }

    /// Asserts an OpenAI error body with this status (and param, when given).
    #[track_caller]
    pub fn expect_error(self, status: u16, param: Option<&str>) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        let error = self.body["error"].clone();
        assert!(error["message"].is_string(), "{}", self.body);
        assert!(error["type"].is_string(), "{}", self.body);
        assert!(error["code"].is_string(), "{}", self.body);
        assert!(error.as_object().unwrap().contains_key("param"));
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{}", self.body);
            assert!(
                error["message"].as_str().unwrap().contains(param),
                "message must name the field: {}",
                self.body
            );
        }
        error
    }
}

/// A signed-up user's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub tenant_id: TenantId,
}

pub fn test_config(home: &std::path::Path, database_url: String) -> Config {
    let mut config = Config::resolve(None, |name| match name {
        "STARFIRE_HOME" => Some(home.display().to_string()),
        _ => None,
    })
    .expect("config");
    config.database_url = database_url;
    config.session_secret = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz".to_owned();
    config.max_body_bytes = 64 * 1024;
    config
}

/// The default model (from the model cache) behind an in-process engine loop, started once per
/// test process and shared by every test in it.
pub fn served_model() -> Arc<InProcessBackend> {
    static BACKEND: OnceLock<Arc<InProcessBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let path = engine::model_cache::find_default_model()
                .expect("the default model is in the cache (`starfire model fetch`)");
            let model = engine::Model::load(&path).expect("load the default model");
            let backend = InProcessBackend::start(
                gateway::registry::DEFAULT_MODEL_ID,
                Arc::new(model),
                64 << 20,
            )
            .expect("start the engine loop");
            Arc::new(backend)
        })
        .clone()
}

/// The app served by a real `HttpServer` on a loopback port; stopped when dropped.
pub struct LiveServer {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        actix_web::rt::spawn(self.handle.stop(false));
    }
}

impl TestApp {
    /// The same app with its configuration changed by `change`.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = (*self.state.config).clone();
        change(&mut config);
        self.state = self.state.reconfigured(config);
        self
    }

    /// Serves the app on a free loopback port (one worker thread) until the result is dropped.
    pub fn serve(&self) -> LiveServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let state = self.state.clone();
        let server = actix_web::HttpServer::new(move || {
            gateway::app_with(state.clone(), ::console::configure)
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        LiveServer { port, handle }
    }

    /// The same app with the default model serving inference.
    pub fn with_model(mut self) -> TestApp {
        self.state = self.state.with_inference(served_model());
        self
    }

    /// Another app on the same database, with `state` (a second replica, another config).
    pub fn sharing(&self, state: AppState) -> TestApp {
        TestApp {
            state,
            _db: self._db.clone(),
        }
    }

    /// A new organization and a project key with the `inference` scope.
    pub async fn inference_key(&self) -> String {
        let owner = self.signup("infer@example.com").await;
        let project = self.default_project(&owner.access).await;
        self.create_key(&owner.access, &project, &["inference"])
            .await
            .1
    }

    pub async fn new(backend: Backend) -> TestApp {
        let (url, guard) = fresh_database(backend).await;
        let home = tempfile::tempdir().expect("tempdir");
        let config = test_config(home.path(), url.clone());
        let store = Store::connect(&url).await.expect("connect and migrate");
        TestApp {
            state: AppState::new(store, config),
            _db: Arc::new(guard),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = test::TestRequest::default()
            .method(method)
            .uri(path)
            .peer_addr("127.0.0.1:40000".parse().unwrap());
        if let Some(token) = token {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.call(req).await
    }

    pub async fn call(&self, req: test::TestRequest) -> Resp {
        let app =
            test::init_service(gateway::app_with(self.state.clone(), ::console::configure)).await;
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = test::read_body(resp).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send(Method::POST, path, token, Some(&body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::DELETE, path, token, None).await
    }

    /// Signs up `email` (password `password123`) with a new organization.
    pub async fn signup(&self, email: &str) -> Session {
        let body = self
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await
            .expect(201);
        session_of(&body)
    }

    /// The id of the tenant's default project.
    pub async fn default_project(&self, token: &str) -> String {
        let body = self
            .get("/v1/organization/projects", Some(token))
            .await
            .expect(200);
        body["data"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a project key with `scopes` and returns (id, value).
    pub async fn create_key(
        &self,
        token: &str,
        project: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let body = self
            .post(
                &format!("/v1/organization/projects/{project}/api_keys"),
                Some(token),
                json!({"name": "test key", "scopes": scopes}),
            )
            .await
            .expect(201);
        (
            body["id"].as_str().unwrap().to_owned(),
            body["value"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates an admin key and returns (id, value).
    pub async fn create_admin_key(&self, token: &str) -> (String, String) {
        let body = self
            .post(
                "/v1/organization/admin_api_keys",
                Some(token),
                json!({"name": "admin"}),
            )
            .await
            .expect(201);
        (
            body["id"].as_str().unwrap().to_owned(),
            body["value"].as_str().unwrap().to_owned(),
        )
    }

    /// Signs up `email` and makes them a member of `owner`'s tenant with `role`; returns a
    /// session acting in that tenant.
    pub async fn member_with_role(&self, owner: &Session, email: &str, role: &str) -> Session {
        let invite = self
            .post(
                "/v1/organization/invites",
                Some(&owner.access),
                json!({"email": email, "role": role}),
            )
            .await
            .expect(201);
        let body = self
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": email, "password": "password123", "invite_token": invite["token"]}),
            )
            .await
            .expect(201);
        let session = session_of(&body);
        assert_eq!(session.tenant_id, owner.tenant_id);
        session
    }
}

pub fn session_of(body: &Value) -> Session {
    Session {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        user_id: body["user"]["id"].as_str().unwrap().to_owned(),
        tenant_id: body["organization"]["id"].as_str().unwrap().into(),
    }
}

/// The `data:` payloads of an SSE body.
pub fn sse_events(body: &Value) -> Vec<String> {
    let text = body.as_str().expect("an event stream");
    assert!(text.ends_with("\n\n"), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e}"))
                .to_owned()
        })
        .collect()
}

/// Temperature 0, then temperature 1 with two choices for each of three seeds: the sampling
/// settings a constrained output is checked under.
pub fn temperatures() -> Vec<Value> {
    let mut t = vec![json!({"temperature": 0})];
    for seed in 1..=3 {
        t.push(json!({"temperature": 1, "seed": seed, "n": 2}));
    }
    t
}

/// `a` with `b`'s fields set on it.
pub fn merged(mut a: Value, b: &Value) -> Value {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// The functions (name and arguments) a chat completion's first choice called, in order.
#[track_caller]
pub fn called_functions(completion: &Value) -> Vec<Value> {
    completion["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool calls: {completion}"))
        .iter()
        .map(|c| c["function"].clone())
        .collect()
}
