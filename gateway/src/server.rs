//! The actix application: shared state, the request-id middleware, error handlers for what
//! actix rejects before a handler runs, and `serve`.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use tracing::Instrument;

use crate::api::body::BodyLimit;
use crate::auth::login_throttle::LoginThrottle;
use crate::auth::principal::RequestId;
use crate::auth::secret::random_base62;
use crate::auth::session::SessionTokens;
use crate::config::Config;
use crate::deployments::DeploymentRouter;
use crate::error::ApiError;
use crate::inference::{InferenceBackend, Unloaded};
use crate::limits::RateLimiter;
use crate::metering::Metering;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub tokens: Arc<SessionTokens>,
    pub login_throttle: Arc<LoginThrottle>,
    /// What serves `/v1/models`, `/v1/chat/completions`, ...
    pub inference: Arc<dyn InferenceBackend>,
    /// The gateway's Prometheus registry (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Usage events, prices and prepaid credits.
    pub metering: Arc<Metering>,
    /// Rate limits of the inference routes (shared through Redis when configured).
    pub limits: Arc<RateLimiter>,
    /// Stripe, when `[billing.stripe]` has a secret key.
    pub stripe: Option<crate::billing::stripe::Stripe>,
    /// The organizations' private deployments, for routing their requests.
    pub deployments: Arc<DeploymentRouter>,
    /// The browser origins projects allow (CORS).
    pub cors: Arc<crate::api::cors::Cors>,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> Self {
        let tokens = SessionTokens::new(
            &config.session_secret,
            config.access_token_ttl_secs,
            config.refresh_token_ttl_secs,
        );
        let metrics = Arc::new(Metrics::default());
        let metering = metering_of(&store, &config, &metrics);
        let limits = Arc::new(RateLimiter::new(&config));
        let stripe = stripe_of(&config);
        let deployments = deployments_of(&store, &config);
        AppState {
            stripe,
            deployments,
            store,
            metrics,
            metering,
            limits,
            config: Arc::new(config),
            tokens: Arc::new(tokens),
            login_throttle: Arc::new(LoginThrottle::default()),
            cors: Arc::default(),
            inference: Arc::new(Unloaded {
                message: "No model is loaded. Run `starfire model fetch`, then restart \
                          `starfire serve`."
                    .to_owned(),
            }),
        }
    }

    /// The same state with `config` (and what is built from it: metering, Stripe).
    pub fn reconfigured(mut self, config: Config) -> Self {
        self.metering = metering_of(&self.store, &config, &self.metrics);
        self.stripe = stripe_of(&config);
        self.deployments = deployments_of(&self.store, &config);
        self.config = Arc::new(config);
        self
    }

    /// The same state with `backend` serving inference.
    pub fn with_inference(mut self, backend: Arc<dyn InferenceBackend>) -> Self {
        self.inference = backend;
        self
    }
}

/// Metering, journaling per-step progress in Redis when `redis_url` is set.
fn metering_of(store: &Store, config: &Config, metrics: &Arc<Metrics>) -> Arc<Metering> {
    Metering::with_journal(
        store.clone(),
        config.metering.clone(),
        metrics.clone(),
        config.redis_url.as_deref().map(|url| {
            (
                url,
                std::time::Duration::from_millis(config.redis_timeout_ms.max(1)),
            )
        }),
    )
}

/// The Stripe client of the configuration (validated when it was read, so building it fails
/// only on a URL the HTTP client rejects: logged, and payments stay off).
/// The deployment router; its replicas take `worker_token`, or a token of this process's own
/// when none is configured (then only this process can reach them: several gateways in front
/// of the same deployments must share `worker_token`).
fn deployments_of(store: &Store, config: &Config) -> Arc<DeploymentRouter> {
    let token = config
        .worker_token
        .clone()
        .unwrap_or_else(|| random_base62(40));
    Arc::new(DeploymentRouter::new(
        store.clone(),
        crate::deployments::router::base_models(&config.models),
        Some(token),
    ))
}

/// Where a request's `model` is served for its caller: one of the caller's organization's
/// deployments (its own replicas, or the shared model it overflows to), else a shared model.
impl AppState {
    pub fn model_for(
        &self,
        principal: &crate::auth::Principal,
        name: &str,
    ) -> Result<Arc<dyn crate::inference::ServedModel>, ApiError> {
        use crate::deployments::router::Resolved;
        match self.deployments.resolve(&principal.tenant_id, name)? {
            Resolved::Own(model) => Ok(model),
            Resolved::Shared(base) => Ok(self.inference.model(&base)?),
            Resolved::NotADeployment => Ok(self.inference.model(name)?),
        }
    }
}

fn stripe_of(config: &Config) -> Option<crate::billing::stripe::Stripe> {
    crate::billing::stripe::Stripe::from_config(&config.billing.stripe).unwrap_or_else(|e| {
        tracing::error!(error = %e, "Stripe is configured but unusable; payments are off");
        None
    })
}

/// Loads the configured models (see `registry`) and starts their engine loops. A single
/// model whose file is missing is not an error: the server then runs without a model and
/// inference routes answer 503 `model_not_loaded`, saying to run `starfire model fetch`.
pub fn load_inference(config: &Config) -> Result<Arc<dyn InferenceBackend>, ServeError> {
    let workers = crate::registry::WorkerSettings {
        token: config.worker_token.clone(),
        ..Default::default()
    };
    crate::registry::load(
        &config.models,
        config.kv_cache_budget(),
        &config.admission,
        &workers,
    )
    .map_err(|e| ServeError::Model(e.to_string()))
}

/// Opens the configured database, creating the SQLite file's directory when needed.
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    if let Some(rest) = config.database_url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if !path.is_empty() && path != ":memory:" {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                }
            }
        }
    }
    Store::connect(&config.database_url).await
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `x-request-id` when it is short and plain, else a new one.
fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", random_base62(24)))
}

async fn unknown_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "Unknown request URL: {} {}.",
        req.method(),
        req.path()
    )))
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::api::openapi_json())
}

/// Routes served beside the API (the console's pages), registered before the catch-all.
pub type ExtraRoutes = fn(&mut web::ServiceConfig);

/// The API alone, for `HttpServer` and for in-process tests (`test::init_service`).
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    app_with(state, |_| {})
}

/// The API and `extra` routes (the `starfire` binary passes the console's): one app, one
/// middleware stack, one catch-all for unknown URLs.
pub fn app_with(
    state: AppState,
    extra: ExtraRoutes,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.max_body_bytes;
    let body_timeout = std::time::Duration::from_secs(state.config.body_timeout_secs);
    let metrics = state.metrics.clone();
    let (cors, store) = (state.cors.clone(), state.store.clone());
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(limit))
        .app_data(BodyLimit {
            bytes: limit,
            timeout: body_timeout,
        })
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("Invalid path: {err}"), None).into()
        }))
        .configure(crate::api::configure)
        .configure(extra)
        .route("/openapi.json", web::get().to(openapi_document))
        .default_service(web::to(unknown_route))
        .wrap_fn(move |mut req, srv| {
            crate::api::body::limit_body_time(&mut req, body_timeout);
            let id = request_id_for(&req);
            req.extensions_mut().insert(RequestId(id.clone()));
            let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
            let started = std::time::Instant::now();
            let method = req.method().to_string();
            let metrics = metrics.clone();
            let (cors, store) = (cors.clone(), store.clone());
            // CORS applies to the API's routes only (never the console's pages).
            let origin = req
                .path()
                .starts_with("/v1/")
                .then(|| crate::api::cors::cross_origin(req.headers()))
                .flatten();
            let preflight = origin.is_some()
                && req.method() == actix_web::http::Method::OPTIONS
                && crate::api::cors::is_preflight(req.headers());
            // A preflight is answered here, before routing (no route declares OPTIONS).
            let call = if preflight {
                Err(req)
            } else {
                Ok(srv.call(req))
            };
            async move {
                // Whether some project allows the origin: then its pages may read the answer
                // (the credential itself was checked against its own project's origins).
                let allowed = match &origin {
                    Some(origin) => match cors.table(&store).await {
                        Ok(table) => table.allows_any(origin),
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the allowed origins failed");
                            false
                        }
                    },
                    None => false,
                };
                // Handlers' and extractors' errors arrive here as responses already (actix
                // renders them per route), so every answer passes through this header step.
                let mut res = match call {
                    Ok(fut) => fut.await?.map_into_left_body(),
                    Err(req) => {
                        let origin = origin.as_deref().unwrap_or_default();
                        let answer = crate::api::cors::preflight(req.headers(), origin, allowed);
                        req.into_response(answer).map_into_right_body()
                    }
                };
                if let (Some(origin), true) = (&origin, allowed) {
                    crate::api::cors::allow_origin(res.headers_mut(), origin);
                }
                if origin.is_some() && !preflight {
                    res.headers_mut().append(
                        actix_web::http::header::VARY,
                        HeaderValue::from_static("Origin"),
                    );
                }
                let route = res.request().match_pattern();
                if let Ok(value) = HeaderValue::from_str(&id) {
                    res.headers_mut().insert(REQUEST_ID, value);
                }
                // Every answer, JSON and streams included, is what its Content-Type says and is
                // not to be framed (the console's pages set their own, stricter, set first).
                let headers = res.headers_mut();
                for (name, value) in [
                    (actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (actix_web::http::header::X_FRAME_OPTIONS, "DENY"),
                ] {
                    if !headers.contains_key(&name) {
                        headers.insert(name, HeaderValue::from_static(value));
                    }
                }
                tracing::info!(
                    status = res.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "request"
                );
                record_request(&metrics, route.as_deref(), &method, res.status().as_u16(), started);
                Ok(res)
            }
            .instrument(span)
        })
}

/// Counts a request and times it (to the response head: a stream's body may run longer). The
/// route is its pattern (`/v1/organization/projects/{project_id}`), never the raw path, so the
/// series stay few; unknown paths count as `unmatched`.
fn record_request(
    metrics: &Metrics,
    route: Option<&str>,
    method: &str,
    status: u16,
    started: std::time::Instant,
) {
    let route = route.unwrap_or("unmatched");
    let status = status.to_string();
    metrics.inc(
        "starfire_http_requests_total",
        "HTTP requests, by route pattern, method and status.",
        &[("route", route), ("method", method), ("status", &status)],
        1,
    );
    metrics.observe(
        "starfire_http_request_duration_seconds",
        "Time to the response head, by route pattern and method.",
        crate::metrics::LATENCY_BUCKETS,
        &[("route", route), ("method", method)],
        started.elapsed().as_secs_f64(),
    );
}

/// Starts the reconciler with the configured driver (or, without one, a task that keeps the
/// routing table fresh). The driver's replicas are killed when the returned handle is dropped.
pub async fn start_deployments(
    state: &AppState,
) -> Option<Arc<dyn crate::deployments::driver::Driver>> {
    use crate::deployments::driver::Driver;
    use crate::deployments::{local::LocalDriver, reconciler::Reconciler, DriverKind};
    let config = &state.config.deployments;
    let interval = std::time::Duration::from_millis(config.reconcile_interval_ms);
    let reconcile = |driver: Arc<dyn Driver>| {
        let reconciler = Arc::new(Reconciler::new(
            state.store.clone(),
            driver.clone(),
            state.deployments.clone(),
            config.clone(),
        ));
        tokio::spawn(reconciler.run());
        Some(driver)
    };
    match config.driver {
        DriverKind::None => {
            let router = state.deployments.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    if let Err(e) = router.refresh().await {
                        tracing::warn!(error = %e, "refreshing the deployments failed");
                    }
                }
            });
            None
        }
        DriverKind::Local => {
            let command = match &config.worker_command {
                Some(path) => path.clone(),
                None => match std::env::current_exe() {
                    Ok(path) => path,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot find this executable; deployments will not run");
                        return None;
                    }
                },
            };
            let mut driver = LocalDriver::new(
                command,
                config.worker_host.clone(),
                &state.config.home,
                state.deployments.token().unwrap_or_default().to_owned(),
                std::time::Duration::from_secs(config.drain_timeout_secs),
            );
            if let Some(pool) = &config.cpu_pool {
                // Checked when the configuration was read.
                let cpus = crate::deployments::parse_cpu_list(pool).unwrap_or_default();
                driver = driver.pinned(cpus, config.cpus_per_replica);
            }
            reconcile(Arc::new(driver))
        }
        DriverKind::Kubernetes => match kube::Client::try_default().await {
            Ok(client) => reconcile(Arc::new(crate::deployments::kubernetes::KubeDriver::new(
                client,
                config.kubernetes.clone(),
                config.drain_timeout_secs,
            ))),
            Err(e) => {
                tracing::error!(error = %e, "no Kubernetes API reachable (in a pod, or through a \
                    kubeconfig); deployments will not run");
                None
            }
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Metering(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Runs the HTTP server until interrupted: the API and the `extra` routes.
pub async fn serve(config: Config, extra: ExtraRoutes) -> Result<(), ServeError> {
    let store = open_store(&config).await?;
    let listen = config.listen.clone();
    // A bad certificate or key stops the start with the reason; once serving, SIGHUP re-reads.
    let tls = config.tls.as_ref().map(|files| files.load()).transpose()?;
    tracing::info!(?config, "starting");
    let inference = load_inference(&config)?;
    let state = AppState::new(store, config).with_inference(inference);
    // Usage rows a previous process left in flight are closed before serving; then this
    // process keeps its own rows' heartbeat and sweeps other replicas' orphans.
    state
        .metering
        .sweep_orphans(true)
        .await
        .map_err(|e| ServeError::Metering(format!("closing orphaned usage rows: {e}")))?;
    tokio::spawn(state.metering.clone().run_background());
    // The configured prices seed the price catalog; invoices are finalized as months end.
    crate::billing::catalog::seed_configured(&state.store, &state.config.metering).await?;
    tokio::spawn(crate::billing::invoice::run_background(
        state.store.clone(),
        state.config.billing.clone(),
    ));
    // Postpaid usage owed to Stripe as meter events.
    if let Some(stripe) = state.stripe.clone() {
        tokio::spawn(crate::billing::stripe::run_meter_reporter(
            stripe,
            state.store.clone(),
            state.metrics.clone(),
        ));
    }
    // Private deployments: this process's routing table, and the driver that runs replicas.
    state.deployments.refresh().await?;
    let _driver = start_deployments(&state).await;
    // Streamed tokens go out as they come: without `TCP_NODELAY` each small write after the
    // first waited for the client's delayed acknowledgement (40 ms on Linux).
    let server = HttpServer::new(move || app_with(state.clone(), extra)).tcp_nodelay(true);
    let server = match &tls {
        Some(tls) => server.bind_rustls_0_23(&listen, tls.server_config()?),
        None => server.bind(&listen),
    }
    .map_err(|source| ServeError::Bind {
        listen: listen.clone(),
        source,
    })?;
    for addr in server.addrs() {
        tracing::info!(%addr, tls = tls.is_some(), "listening");
    }
    if let Some(tls) = &tls {
        tls.reload_on_sighup();
    }
    server.run().await?;
    Ok(())
}
