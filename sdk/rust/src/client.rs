//! The client: configuration, the retry loop and the operations.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use rand::Rng;
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::types::*;
use crate::websocket::ChatSocket;

const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Every (method, path) this client calls; `tests/spec.rs` checks them against the spec.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("post", "/v1/chat/completions"),
    ("get", "/v1/organization/projects"),
    ("post", "/v1/organization/projects"),
    ("get", "/v1/organization/projects/{project_id}"),
    ("post", "/v1/organization/projects/{project_id}"),
    ("post", "/v1/organization/projects/{project_id}/archive"),
    ("get", "/v1/organization/projects/{project_id}/api_keys"),
    ("post", "/v1/organization/projects/{project_id}/api_keys"),
    (
        "get",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}",
    ),
    (
        "post",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}",
    ),
    (
        "delete",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}",
    ),
    ("get", "/v1/organization/deployments"),
    ("post", "/v1/organization/deployments"),
    ("get", "/v1/organization/deployments/{deployment_id}"),
    ("post", "/v1/organization/deployments/{deployment_id}"),
    ("delete", "/v1/organization/deployments/{deployment_id}"),
    ("post", "/v1/organization/deployments/{deployment_id}/stop"),
    ("post", "/v1/organization/deployments/{deployment_id}/start"),
    ("get", "/v1/organization/deployments/{deployment_id}/events"),
    ("get", "/v1/organization/usage/completions"),
    ("get", "/v1/organization/costs"),
    ("get", "/v1/organization/credits"),
    ("get", "/v1/billing/balance"),
    ("get", "/v1/billing/ledger"),
    ("get", "/v1/billing/invoices"),
    ("get", "/v1/billing/invoices/upcoming"),
    ("get", "/v1/billing/invoices/{invoice_id}"),
    ("get", "/v1/billing/prices"),
    ("post", "/v1/billing/top_ups"),
    ("get", "/v1/billing/top_ups"),
    ("get", "/v1/billing/top_ups/{top_up_id}"),
    ("get", "/v1/organization/budget"),
    ("post", "/v1/organization/budget"),
    ("delete", "/v1/organization/budget"),
    ("get", "/v1/organization/projects/{project_id}/budget"),
    ("post", "/v1/organization/projects/{project_id}/budget"),
    ("delete", "/v1/organization/projects/{project_id}/budget"),
    (
        "get",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
    ),
    (
        "post",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
    ),
    (
        "delete",
        "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
    ),
    ("post", "/v1/ws/tickets"),
    ("get", "/v1/chat/ws"),
];

/// A stream of chat completion chunks; never retried once it has started.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, Error>> + Send>>;

/// A client of one Starfire server. Requests answered 408, 409, 429 or 5xx, and connection
/// failures, are retried `max_retries` times with exponential backoff and jitter, honouring
/// `Retry-After`; a POST keeps one `Idempotency-Key` across its retries.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    api_key: String,
    base_url: String,
    max_retries: u32,
}

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a TLS backend is compiled in")
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

fn backoff(attempt: u32) -> Duration {
    let base = (0.5 * 2f64.powi(attempt as i32)).min(8.0);
    Duration::from_secs_f64(base * (1.0 - 0.25 * rand::rng().random::<f64>()))
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn transport(err: reqwest::Error) -> Error {
    if err.is_timeout() {
        Error::Timeout
    } else {
        Error::Connection(err.to_string())
    }
}

async fn api_error(response: Response) -> Error {
    let status = response.status().as_u16();
    let request_id = request_id(&response);
    let text = response.text().await.unwrap_or_default();
    let (message, code, param) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error.message, body.error.code, body.error.param),
        Err(_) => (format!("HTTP {status}: {text}"), None, None),
    };
    Error::Api {
        kind: ErrorKind::of(status, code.as_deref()),
        status,
        message,
        code,
        param,
        request_id,
    }
}

impl Client {
    pub fn new(api_key: impl Into<String>, base_url: impl Into<String>) -> Client {
        Client {
            http: http_client(Duration::from_secs(600)),
            api_key: api_key.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            max_retries: 2,
        }
    }

    /// `STARFIRE_API_KEY` and `STARFIRE_BASE_URL` (default http://127.0.0.1:8080).
    pub fn from_env() -> Result<Client, Error> {
        let key = std::env::var("STARFIRE_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::Config("No API key: set STARFIRE_API_KEY.".into()))?;
        let base = std::env::var("STARFIRE_BASE_URL").unwrap_or_else(|_| DEFAULT_BASE_URL.into());
        Ok(Client::new(key, base))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.http = http_client(timeout);
        self
    }

    pub fn with_max_retries(mut self, max_retries: u32) -> Client {
        self.max_retries = max_retries;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends with retries; returns the successful response, its body unread.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Response, Error> {
        let idempotency_key = (method == Method::POST).then(|| {
            let bytes: [u8; 16] = rand::rng().random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("sf-rs-{hex}")
        });
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(&self.api_key);
            if let Some(key) = &idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let wait = match outcome {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let after = retry_after(&response);
                    let status = response.status();
                    let err = api_error(response).await;
                    // A spent quota does not come back by waiting.
                    if attempt >= self.max_retries
                        || !retryable(status)
                        || err.kind() == Some(ErrorKind::InsufficientQuota)
                    {
                        return Err(err);
                    }
                    match after {
                        Some(after) if after > MAX_RETRY_AFTER => return Err(err),
                        Some(after) => after,
                        None => backoff(attempt),
                    }
                }
                Err(err) => {
                    if attempt >= self.max_retries {
                        return Err(transport(err));
                    }
                    backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let response = self.send(method, path, body).await?;
        let bytes = response.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    /// A whole chat completion.
    pub async fn chat_completion(
        &self,
        mut request: ChatCompletionRequest,
    ) -> Result<ChatCompletion, Error> {
        request.stream = None;
        self.json(Method::POST, "/v1/chat/completions", Some(&request))
            .await
    }

    /// A streamed chat completion: chunks as they are generated.
    pub async fn chat_completion_stream(
        &self,
        mut request: ChatCompletionRequest,
    ) -> Result<ChunkStream, Error> {
        request.stream = Some(true);
        let response = self
            .send(Method::POST, "/v1/chat/completions", Some(&request))
            .await?;
        let id = request_id(&response);
        let bytes = response.bytes_stream();
        struct State<S> {
            bytes: S,
            buffer: Vec<u8>,
            done: bool,
            request_id: Option<String>,
        }
        let state = State {
            bytes: Box::pin(bytes),
            buffer: Vec::new(),
            done: false,
            request_id: id,
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                if let Some(data) = next_event_data(&mut st.buffer) {
                    let Some(data) = data else {
                        continue;
                    };
                    if data == "[DONE]" {
                        return None;
                    }
                    let item = parse_chunk(&data, &st.request_id);
                    if item.is_err() {
                        st.done = true;
                    }
                    return Some((item, st));
                }
                match st.bytes.next().await {
                    Some(Ok(bytes)) => st.buffer.extend_from_slice(&bytes),
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(transport(e)), st));
                    }
                    None => {
                        st.done = true;
                        return Some((
                            Err(Error::Connection("the stream ended before [DONE]".into())),
                            st,
                        ));
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    pub async fn create_project(&self, name: &str) -> Result<Project, Error> {
        let body = ProjectCreate { name: name.into() };
        self.json(Method::POST, "/v1/organization/projects", Some(&body))
            .await
    }

    /// Every project, following the list's cursor.
    pub async fn list_projects(&self) -> Result<Vec<Project>, Error> {
        self.all("/v1/organization/projects").await
    }

    /// One project of the organization, archived or not.
    pub async fn get_project(&self, project_id: &str) -> Result<Project, Error> {
        let path = format!("/v1/organization/projects/{project_id}");
        self.json::<Project, ()>(Method::GET, &path, None).await
    }

    /// Renames a project and/or replaces its rate limits.
    pub async fn update_project(
        &self,
        project_id: &str,
        update: &ProjectUpdate,
    ) -> Result<Project, Error> {
        let path = format!("/v1/organization/projects/{project_id}");
        self.json(Method::POST, &path, Some(update)).await
    }

    /// Archives a project: its API keys stop working at once, and it leaves the list of
    /// projects.
    pub async fn archive_project(&self, project_id: &str) -> Result<Project, Error> {
        let path = format!("/v1/organization/projects/{project_id}/archive");
        self.json::<Project, ()>(Method::POST, &path, None).await
    }

    /// Creates a project API key; `value` of the answer is the only time the secret is shown.
    pub async fn create_api_key(
        &self,
        project_id: &str,
        key: &ApiKeyCreate,
    ) -> Result<CreatedApiKey, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys");
        self.json(Method::POST, &path, Some(key)).await
    }

    /// Every live key of a project, following the list's cursor.
    pub async fn list_api_keys(&self, project_id: &str) -> Result<Vec<ApiKey>, Error> {
        self.all(&format!("/v1/organization/projects/{project_id}/api_keys"))
            .await
    }

    /// One key of a project (the secret is never shown again).
    pub async fn get_api_key(&self, project_id: &str, key_id: &str) -> Result<ApiKey, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}");
        self.json::<ApiKey, ()>(Method::GET, &path, None).await
    }

    /// Revokes a key.
    pub async fn delete_api_key(&self, project_id: &str, key_id: &str) -> Result<Deleted, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}");
        self.json::<Deleted, ()>(Method::DELETE, &path, None).await
    }

    /// Renames a key and/or replaces its rate limits.
    pub async fn update_api_key(
        &self,
        project_id: &str,
        key_id: &str,
        update: &ApiKeyUpdate,
    ) -> Result<ApiKey, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}");
        self.json(Method::POST, &path, Some(update)).await
    }

    /// Requests a private deployment. It waits for a platform operator's approval (state
    /// `requested`) unless the installation approves automatically; then its replicas start.
    pub async fn create_deployment(
        &self,
        deployment: &DeploymentCreate,
    ) -> Result<Deployment, Error> {
        self.json(
            Method::POST,
            "/v1/organization/deployments",
            Some(deployment),
        )
        .await
    }

    /// Every deployment of the organization (with `include_deleted`, deleted ones too),
    /// following the list's cursor.
    pub async fn list_deployments(&self, include_deleted: bool) -> Result<Vec<Deployment>, Error> {
        let path = with_query(
            "/v1/organization/deployments",
            &[("include_deleted", include_deleted.then_some("true"))],
        );
        self.all(&path).await
    }

    /// One deployment of the organization.
    pub async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, Error> {
        let path = deployment_path(deployment_id, "");
        self.json::<Deployment, ()>(Method::GET, &path, None).await
    }

    /// Scales a deployment to `replicas`; a serving one goes to `scaling` until the new count
    /// is ready, one not running yet keeps its state.
    pub async fn update_deployment_replicas(
        &self,
        deployment_id: &str,
        replicas: ReplicaRange,
    ) -> Result<Deployment, Error> {
        let path = deployment_path(deployment_id, "");
        let body = DeploymentUpdate { replicas };
        self.json(Method::POST, &path, Some(&body)).await
    }

    /// Stops a deployment: its replicas finish what they run, then stop (reserved capacity is
    /// no longer charged); its requests get 503 `deployment_not_ready` until it starts again.
    pub async fn stop_deployment(&self, deployment_id: &str) -> Result<Deployment, Error> {
        let path = deployment_path(deployment_id, "/stop");
        self.json::<Deployment, ()>(Method::POST, &path, None).await
    }

    /// Starts a stopped (or failed) deployment again.
    pub async fn start_deployment(&self, deployment_id: &str) -> Result<Deployment, Error> {
        let path = deployment_path(deployment_id, "/start");
        self.json::<Deployment, ()>(Method::POST, &path, None).await
    }

    /// Deletes a deployment: its replicas stop and it answers in state `deleting`, then becomes
    /// `deleted` (its name is free again; its history and charges stay).
    pub async fn delete_deployment(&self, deployment_id: &str) -> Result<Deployment, Error> {
        let path = deployment_path(deployment_id, "");
        self.json::<Deployment, ()>(Method::DELETE, &path, None)
            .await
    }

    /// A deployment's history of states, oldest first.
    pub async fn deployment_events(
        &self,
        deployment_id: &str,
    ) -> Result<Vec<DeploymentEvent>, Error> {
        let path = deployment_path(deployment_id, "/events");
        let list: DeploymentEventList = self
            .json::<DeploymentEventList, ()>(Method::GET, &path, None)
            .await?;
        Ok(list.data)
    }

    /// Token usage of chat and text completions: every bucket, following `next_page`.
    pub async fn usage_completions(
        &self,
        query: &UsageQuery,
    ) -> Result<Vec<UsageBucket<CompletionsUsage>>, Error> {
        self.buckets("/v1/organization/usage/completions", query)
            .await
    }

    /// What the organization spent, per day: every bucket, following `next_page`.
    pub async fn costs(&self, query: &UsageQuery) -> Result<Vec<UsageBucket<CostResult>>, Error> {
        self.buckets("/v1/organization/costs", query).await
    }

    /// The organization's prepaid credits and ledger.
    pub async fn credits(&self) -> Result<Credits, Error> {
        self.json::<Credits, ()>(Method::GET, "/v1/organization/credits", None)
            .await
    }

    /// The organization's prepaid balance (micro-USD: 1 USD = 1,000,000).
    pub async fn get_balance(&self) -> Result<Balance, Error> {
        self.json::<Balance, ()>(Method::GET, "/v1/billing/balance", None)
            .await
    }

    /// Every ledger entry of the organization, newest first, following the list's cursor.
    pub async fn list_ledger(&self) -> Result<Vec<LedgerEntry>, Error> {
        self.all("/v1/billing/ledger").await
    }

    /// Every finalized invoice of the organization, newest first, following the list's cursor.
    pub async fn list_invoices(&self) -> Result<Vec<Invoice>, Error> {
        self.all("/v1/billing/invoices").await
    }

    /// One finalized invoice.
    pub async fn get_invoice(&self, invoice_id: &str) -> Result<Invoice, Error> {
        let path = format!("/v1/billing/invoices/{}", percent_encode(invoice_id));
        self.json::<Invoice, ()>(Method::GET, &path, None).await
    }

    /// The statement of a month (`YYYY-MM`, UTC; `None`: the current one): the finalized
    /// invoice when there is one, else the running draft.
    pub async fn upcoming_invoice(&self, period: Option<&str>) -> Result<Invoice, Error> {
        let path = with_query("/v1/billing/invoices/upcoming", &[("period", period)]);
        self.json::<Invoice, ()>(Method::GET, &path, None).await
    }

    /// The price catalog (past, current and scheduled prices), or one model's prices.
    pub async fn list_prices(&self, model: Option<&str>) -> Result<Vec<Price>, Error> {
        let path = with_query("/v1/billing/prices", &[("model", model)]);
        let list: List<Price> = self
            .json::<List<Price>, ()>(Method::GET, &path, None)
            .await?;
        Ok(list.data)
    }

    /// Buys credits: opens a Stripe Checkout Session for `amount_micros` (whole cents) and
    /// returns where to pay (`checkout_url`). The credits are added when Stripe reports the
    /// payment; retries keep one `Idempotency-Key`, so one session is opened.
    pub async fn create_top_up(&self, top_up: &TopUpCreate) -> Result<TopUp, Error> {
        self.json(Method::POST, "/v1/billing/top_ups", Some(top_up))
            .await
    }

    /// Every top-up of the organization, newest first, following the list's cursor.
    pub async fn list_top_ups(&self) -> Result<Vec<TopUp>, Error> {
        self.all("/v1/billing/top_ups").await
    }

    /// One top-up.
    pub async fn get_top_up(&self, top_up_id: &str) -> Result<TopUp, Error> {
        let path = format!("/v1/billing/top_ups/{}", percent_encode(top_up_id));
        self.json::<TopUp, ()>(Method::GET, &path, None).await
    }

    /// The organization's monthly spend cap and what it counts.
    pub async fn get_organization_budget(&self) -> Result<Budget, Error> {
        self.budget(Method::GET, "/v1/organization/budget", None)
            .await
    }

    /// Sets or replaces the organization's monthly cap, in micro-USD.
    pub async fn set_organization_budget(&self, limit_micros: i64) -> Result<Budget, Error> {
        self.budget(Method::POST, "/v1/organization/budget", Some(limit_micros))
            .await
    }

    /// Removes the organization's cap; answers the budget without it.
    pub async fn delete_organization_budget(&self) -> Result<Budget, Error> {
        self.budget(Method::DELETE, "/v1/organization/budget", None)
            .await
    }

    /// A project's monthly spend cap and what it counts.
    pub async fn get_project_budget(&self, project_id: &str) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/budget");
        self.budget(Method::GET, &path, None).await
    }

    /// Sets or replaces a project's monthly cap, in micro-USD.
    pub async fn set_project_budget(
        &self,
        project_id: &str,
        limit_micros: i64,
    ) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/budget");
        self.budget(Method::POST, &path, Some(limit_micros)).await
    }

    /// Removes a project's cap; answers the budget without it.
    pub async fn delete_project_budget(&self, project_id: &str) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/budget");
        self.budget(Method::DELETE, &path, None).await
    }

    /// An API key's lifetime spend cap and what it counts.
    pub async fn get_key_budget(&self, project_id: &str, key_id: &str) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}/budget");
        self.budget(Method::GET, &path, None).await
    }

    /// Sets or replaces an API key's lifetime cap, in micro-USD.
    pub async fn set_key_budget(
        &self,
        project_id: &str,
        key_id: &str,
        limit_micros: i64,
    ) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}/budget");
        self.budget(Method::POST, &path, Some(limit_micros)).await
    }

    /// Removes an API key's cap; answers the budget without it.
    pub async fn delete_key_budget(&self, project_id: &str, key_id: &str) -> Result<Budget, Error> {
        let path = format!("/v1/organization/projects/{project_id}/api_keys/{key_id}/budget");
        self.budget(Method::DELETE, &path, None).await
    }

    async fn budget(
        &self,
        method: Method,
        path: &str,
        limit_micros: Option<i64>,
    ) -> Result<Budget, Error> {
        let body = limit_micros.map(|limit_micros| BudgetUpdate { limit_micros });
        self.json(method, path, body.as_ref()).await
    }

    /// A single-use ticket for `GET /v1/chat/ws?ticket=`.
    pub async fn create_ws_ticket(&self) -> Result<WsTicket, Error> {
        self.json::<WsTicket, ()>(Method::POST, "/v1/ws/tickets", None)
            .await
    }

    fn ws_url(&self) -> String {
        let base = self.base_url.strip_prefix("http").unwrap_or(&self.base_url);
        format!("ws{base}/v1/chat/ws")
    }

    /// Opens a chat WebSocket authenticated with the key header.
    pub async fn chat_socket(&self) -> Result<ChatSocket, Error> {
        ChatSocket::connect(&self.ws_url(), Some(&self.api_key)).await
    }

    /// Opens a chat WebSocket authenticated with a fresh single-use ticket in the URL (as a
    /// client that cannot set headers must).
    pub async fn chat_socket_with_ticket(&self) -> Result<ChatSocket, Error> {
        let ticket = self.create_ws_ticket().await?;
        let url = format!("{}?ticket={}", self.ws_url(), ticket.ticket);
        ChatSocket::connect(&url, None).await
    }

    async fn buckets<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &UsageQuery,
    ) -> Result<Vec<UsageBucket<T>>, Error> {
        let mut buckets = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let pairs = query.pairs(page.as_deref());
            let qs: String = pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let url = format!("{path}?{qs}");
            let got: UsagePage<T> = self
                .json::<UsagePage<T>, ()>(Method::GET, &url, None)
                .await?;
            buckets.extend(got.data);
            match (got.has_more, got.next_page) {
                (true, Some(next)) => page = Some(next),
                _ => return Ok(buckets),
            }
        }
    }

    /// Every item of a cursor list; `path` may carry a query of its own.
    async fn all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, Error> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &after {
                Some(a) => format!("{path}{sep}limit=100&after={a}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page: List<T> = self.json::<List<T>, ()>(Method::GET, &url, None).await?;
            items.extend(page.data);
            match (page.has_more, page.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => return Ok(items),
            }
        }
    }
}

/// `/v1/organization/deployments/{deployment_id}` (the id percent-encoded) and `rest`.
fn deployment_path(deployment_id: &str, rest: &str) -> String {
    format!(
        "/v1/organization/deployments/{}{rest}",
        percent_encode(deployment_id)
    )
}

/// `path` with the given query parameters (those that are `Some`), percent-encoded.
fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let qs: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if qs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", qs.join("&"))
    }
}

/// A query value, percent-encoded (RFC 3986 unreserved characters kept).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One step of the SSE parser of [`Client::chat_completion_stream`]: the first complete event
/// of `buffer` (the bytes received so far), removed from it. One event per blank-line-terminated
/// block; only `data:` lines matter, joined with `\n` (`Some(None)`: an event without data,
/// which the stream skips). `None` until a blank line ends an event. Public for the fuzz
/// targets (`fuzz/` in the server's repository).
#[doc(hidden)]
pub fn next_event_data(buffer: &mut Vec<u8>) -> Option<Option<String>> {
    let end = find_event_end(buffer)?;
    let event: Vec<u8> = buffer.drain(..end.1).collect();
    let event = String::from_utf8_lossy(&event[..end.0]).into_owned();
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return Some(None);
    }
    Some(Some(data.join("\n")))
}

/// (end of the event's text, end including the blank line) of the first complete event.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buffer.len() {
        if buffer[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
        if buffer[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
    }
    None
}

/// A streamed event's data as a chunk, or the stream's error. Public for the fuzz targets.
#[doc(hidden)]
pub fn parse_chunk(data: &str, request_id: &Option<String>) -> Result<ChatCompletionChunk, Error> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| Error::Decode(e.to_string()))?;
    if let Some(err) = value.get("error") {
        return Err(Error::Stream {
            message: err["message"].as_str().unwrap_or("stream error").to_owned(),
            code: err["code"].as_str().map(str::to_owned),
            request_id: request_id.clone(),
        });
    }
    serde_json::from_value(value).map_err(|e| Error::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some((7, 9)));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some((7, 11)));
        assert_eq!(find_event_end(b"data: a\n"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(500));
        assert!(backoff(1) >= Duration::from_millis(750));
        assert!(backoff(10) <= Duration::from_secs(8));
    }

    #[test]
    fn queries_leave_out_none_and_encode_values() {
        assert_eq!(with_query("/p", &[("model", None)]), "/p");
        assert_eq!(
            with_query("/p", &[("a", Some("x y/z")), ("b", None), ("c", Some("1"))]),
            "/p?a=x%20y%2Fz&c=1"
        );
    }

    #[test]
    fn deployment_paths_encode_the_id() {
        assert_eq!(
            deployment_path("dep_1", "/stop"),
            "/v1/organization/deployments/dep_1/stop"
        );
        assert_eq!(
            deployment_path("a/b", ""),
            "/v1/organization/deployments/a%2Fb"
        );
    }

    #[test]
    fn stream_errors_carry_the_request_id() {
        let err = parse_chunk(
            r#"{"error":{"message":"boom","code":"x"}}"#,
            &Some("req_1".into()),
        )
        .unwrap_err();
        assert_eq!(err.request_id(), Some("req_1"));
    }
}
