//! Starfire's gateway: the HTTP API in front of the engine, and everything about accounts.
//!
//! Read in the order a request flows:
//! - `config`: TOML file + `STARFIRE_*` environment, every field with its default.
//! - `server`: the actix app (request ids, body limit, error handlers) and `serve`; routes that
//!   are not the API's (the `console` crate's pages) come in through `app_with` and `serve`'s
//!   `extra` argument, so the API knows nothing of them.
//! - `inference`: the backend seam (`InferenceBackend`, `ServedModel`, `DeltaStream` and
//!   `BackendError`, from the `protocol` crate) and its in-process implementation (the engine's
//!   model and the scheduler's `EngineLoop`).
//! - `generation`: the one start-up sequence of every inference request (rate limits,
//!   fair-share weight, budget reservation and usage row, submission to the backend).
//! - `registry`: the served models from configuration (`[[models]]` or `model_path`), each run
//!   in this process or by a pool of workers.
//! - `worker`: `starfire worker` (a model behind HTTP, no accounts) and the worker pools a
//!   gateway routes a model's requests over.
//! - `limits`: rate limits (requests, tokens, concurrency per minute; Redis or in process),
//!   checked after the request is parsed and before it reaches the engine.
//! - `auth`: credentials (API keys, console sessions) resolved to a [`auth::Principal`] with its
//!   permission checks.
//! - `api`: the routes, one file per resource, each in the OpenAPI document.
//! - `metering`: usage events (exactly once per request), prices, prepaid credits and the
//!   admission-time reservation; `metrics`: the gateway's Prometheus registry.
//! - `billing`: the dated price catalog, invoices (finalized per month), the billing
//!   operator's credential.
//! - `store`: the `store` crate, the one store API over SQLite or PostgreSQL (sqlx, versioned
//!   migrations), with no HTTP in it.
//! - `error`: the one error table, producing OpenAI's error body.
//! - `bootstrap`: `starfire admin bootstrap`.
//!
//! Building on it:
//! - A route takes `principal: Principal` (any credential; 401 before the handler runs) and
//!   calls `principal.require(Permission::Inference)?` (or `require_organization` /
//!   `require_project`) first thing; everything it reads is then filtered by
//!   `principal.tenant_id` (and `project_id` for project keys). `principal.key_id`, `limits` and
//!   `request.request_id` are what rate limiting and usage metering key on.
//! - Every inference request starts through `generation::admit` and `Admitted::submit`: what
//!   must hold for every request (admission, budget, usage settlement) goes there, once for
//!   chat, completions and embeddings. A chat, over REST or the WebSocket (`api::chat_ws`),
//!   starts through `api::inference::start_chat`, once for both transports.
//! - A backend's refusals are `BackendError`s, turned into HTTP answers in one table
//!   (`error.rs`); nothing parses an error's text.
//! - Storage goes through `Store` methods (the `store` crate, one file per resource), in the SQL
//!   SQLite and PostgreSQL share; a schema change is a new file under `store/migrations/`.
//! - A route is added to the `routes!` list in `api/mod.rs`, which registers it from its
//!   `#[utoipa::path]`; then `starfire openapi > openapi/openapi.json`.
//! - Tests: the product's integration tests live in the `starfire` crate (next to the binary
//!   they start); its `tests/integration/support.rs` gives `TestApp::new(Backend::Sqlite | Postgres)`
//!   (a fresh database each) and `on_both_backends!(test_fn, ...)`.

pub mod api;
pub mod auth;
pub mod billing;
pub mod bootstrap;
pub mod config;
pub mod deployments;
pub mod error;
pub mod generation;
pub mod inference;
pub mod limits;
pub mod metering;
pub mod metrics;
pub mod redis_conn;
pub mod registry;
pub mod server;
pub mod tls;
pub mod worker;

/// The database layer, its own crate (no HTTP in it).
pub use store;

pub use api::openapi_json;
pub use auth::Principal;
pub use config::Config;
pub use error::ApiError;
pub use server::{app, app_with, serve, AppState, ExtraRoutes};
pub use store::Store;
