//! Starfire's gateway: the HTTP API in front of the engine, and everything about accounts.
//!
//! Read in the order a request flows:
//! - `config`: TOML file + `STARFIRE_*` environment, every field with its default.
//! - `server`: the actix app (request ids, body limit, error handlers) and `serve`.
//! - `auth`: credentials (API keys, console sessions) resolved to a [`auth::Principal`] with its
//!   permission checks.
//! - `api`: the routes, one file per resource, each in the OpenAPI document.
//! - `store`: the one store API over SQLite or PostgreSQL (sqlx, versioned migrations).
//! - `error`: the one error table, producing OpenAI's error body.
//! - `bootstrap`: `starfire admin bootstrap`.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod server;
pub mod store;

pub use api::openapi_json;
pub use auth::Principal;
pub use config::Config;
pub use error::ApiError;
pub use server::{app, serve, AppState};
pub use store::Store;
