//! The product's integration tests (the gateway's API, the console, the binary), in one binary
//! (faster to link). Route tests start the app in-process and run once on SQLite and once on
//! PostgreSQL, each with a fresh database; the `e2e` and `openai_sdk` modules run the real
//! `starfire` binary.

#[path = "integration/support.rs"]
#[macro_use]
mod support;

#[path = "integration/admin_keys.rs"]
mod admin_keys;
#[path = "integration/api_keys.rs"]
mod api_keys;
#[path = "integration/audit_logs.rs"]
mod audit_logs;
#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/billing.rs"]
mod billing;
#[path = "integration/budgets.rs"]
mod budgets;
#[path = "integration/chat_ws.rs"]
mod chat_ws;
#[path = "integration/console.rs"]
mod console;
#[path = "integration/console_billing.rs"]
mod console_billing;
#[path = "integration/console_browser.rs"]
mod console_browser;
#[path = "integration/console_members.rs"]
mod console_members;
#[path = "integration/contract.rs"]
mod contract;
#[path = "integration/cors.rs"]
mod cors;
#[path = "integration/cuda_backend.rs"]
mod cuda_backend;
#[path = "integration/deploy_manifests.rs"]
mod deploy_manifests;
#[path = "integration/deployments.rs"]
mod deployments;
#[path = "integration/e2e.rs"]
mod e2e;
#[path = "integration/embeddings.rs"]
mod embeddings;
#[path = "integration/fake_stripe.rs"]
mod fake_stripe;
#[path = "integration/graceful_shutdown.rs"]
mod graceful_shutdown;
#[path = "integration/http.rs"]
mod http;
#[path = "integration/idempotency.rs"]
mod idempotency;
#[path = "integration/idle_websockets.rs"]
mod idle_websockets;
#[path = "integration/inference.rs"]
mod inference;
#[path = "integration/invites.rs"]
mod invites;
#[path = "integration/isolation.rs"]
mod isolation;
#[path = "integration/log_secrets.rs"]
mod log_secrets;
#[path = "integration/metering.rs"]
mod metering;
#[path = "integration/openai_sdk.rs"]
mod openai_sdk;
#[path = "integration/openai_upstream.rs"]
mod openai_upstream;
#[path = "integration/openapi.rs"]
mod openapi;
#[path = "integration/postgres_faults.rs"]
mod postgres_faults;
#[path = "integration/projects.rs"]
mod projects;
#[path = "integration/rate_limits.rs"]
mod rate_limits;
#[path = "integration/rate_limits_e2e.rs"]
mod rate_limits_e2e;
#[path = "integration/redis_faults.rs"]
mod redis_faults;
#[path = "integration/registry.rs"]
mod registry;
#[path = "integration/remote_backend.rs"]
mod remote_backend;
#[path = "integration/stripe.rs"]
mod stripe;
#[path = "integration/structured.rs"]
mod structured;
#[path = "integration/tls.rs"]
mod tls;
#[path = "integration/tools.rs"]
mod tools;
#[path = "integration/usage_api.rs"]
mod usage_api;
#[path = "integration/usage_e2e.rs"]
mod usage_e2e;
#[path = "integration/users.rs"]
mod users;
#[path = "integration/workers.rs"]
mod workers;
#[path = "integration/workers_spread.rs"]
mod workers_spread;
