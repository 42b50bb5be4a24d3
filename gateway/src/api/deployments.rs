//! `/v1/organization/deployments`: private deployments (request, list, retrieve, scale, stop,
//! start, delete, history), and the platform operator's `/v1/billing/admin/deployments` (list
//! what waits, approve, reject). See `crate::deployments` for the lifecycle.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{JsonBody, QueryArgs};
use super::list::{list_of, HasId, ListQuery};
use super::{audit, idempotency};
use crate::auth::{Permission, Principal};
use crate::billing::operator::Operator;
use crate::deployments::reconciler::{capacity_price, transition_billed};
use crate::deployments::router::price_key;
use crate::deployments::{names, Approval, State};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::deployments::{
    CapacityPrice, Deployment, DeploymentEvent, Moved, NewDeployment, Transition,
};
use crate::store::money::Prices;
use crate::store::{ms_to_secs, now_ms, TenantId};

/// Longest deployment name.
const MAX_DEPLOYMENT_NAME: usize = 64;
/// Smallest and largest KV cache per replica.
const MIN_KV_CACHE: u64 = 4 << 20;
const MAX_KV_CACHE: u64 = 256 << 30;

/// How many replicas run: `min` always; `max` is the most the deployment may be scaled to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaRange {
    /// Replicas that always run (at least 1).
    #[schema(minimum = 1)]
    pub min: i64,
    /// The most replicas (at least `min`, at most the installation's `max_replicas`); above
    /// `min`, the autoscaler adds replicas up to it under load and removes them when load falls.
    #[schema(minimum = 1)]
    pub max: i64,
}

/// A private deployment: replicas of a model that only this organization's requests reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentObject {
    pub id: String,
    /// Always `deployment`.
    #[schema(example = "deployment")]
    pub object: &'static str,
    /// What requests put in `model` to reach it.
    pub name: String,
    /// The served model it runs.
    pub model: String,
    pub replicas: ReplicaRange,
    /// Replicas it runs now: `replicas.min` at first, moved within `[min, max]` by the
    /// autoscaler as load comes and goes (and charged for).
    pub target_replicas: i64,
    /// Replicas that answer now.
    pub ready_replicas: i64,
    /// `cpu` (or `cuda` once that engine exists).
    pub hardware: String,
    /// Bytes of KV cache per replica.
    pub kv_cache_memory: i64,
    /// Cap on prompt plus completion tokens; null: the model's own.
    pub max_model_len: Option<i64>,
    /// `none`: only its own replicas serve it; `shared`: the shared pool serves it while it
    /// has no ready replica.
    pub overflow: String,
    /// `requested`, `rejected`, `provisioning`, `ready`, `scaling`, `stopping`, `stopped`,
    /// `deleting`, `deleted` or `failed`.
    #[schema(example = "ready")]
    pub state: String,
    /// Why it is in its state (a failure's or rejection's reason).
    pub status_message: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change of state or replicas.
    pub updated_at: i64,
}

impl From<Deployment> for DeploymentObject {
    fn from(d: Deployment) -> Self {
        DeploymentObject {
            id: d.id,
            object: "deployment",
            name: d.name,
            model: d.model,
            replicas: ReplicaRange {
                min: d.replicas_min,
                max: d.replicas_max,
            },
            target_replicas: d.replicas_target,
            ready_replicas: d.ready_replicas,
            hardware: d.hardware,
            kv_cache_memory: d.kv_cache_memory,
            max_model_len: d.max_model_len,
            overflow: d.overflow,
            state: d.state,
            status_message: d.status_message,
            created_at: ms_to_secs(d.created_ms),
            updated_at: ms_to_secs(d.updated_ms),
        }
    }
}

impl HasId for DeploymentObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(DeploymentList, DeploymentObject);

/// One transition of a deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentEventObject {
    pub id: String,
    /// Always `deployment.event`.
    #[schema(example = "deployment.event")]
    pub object: &'static str,
    /// Null for the first.
    pub from_state: Option<String>,
    pub to_state: String,
    /// `user:<id>`, `api_key:<id>`, `operator:<name>` or `system`.
    pub actor: String,
    pub message: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<DeploymentEvent> for DeploymentEventObject {
    fn from(e: DeploymentEvent) -> Self {
        DeploymentEventObject {
            id: e.id,
            object: "deployment.event",
            from_state: e.from_state,
            to_state: e.to_state,
            actor: e.actor,
            message: e.message,
            created_at: ms_to_secs(e.created_ms),
        }
    }
}

/// A deployment's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentEventList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<DeploymentEventObject>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeploymentListQuery {
    /// How many objects to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The id of the last object of the previous page.
    pub after: Option<String>,
    /// Include deleted deployments (default false).
    #[serde(default)]
    pub include_deleted: bool,
}

/// What a new deployment asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentCreate {
    /// 1 to 64 letters, digits, `-`, `_` or `.`; unique among the organization's deployments
    /// and different from every shared model's name.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub name: String,
    /// A served model (see `GET /v1/models`).
    pub model: String,
    /// Default `{"min": 1, "max": 1}`.
    pub replicas: Option<ReplicaRange>,
    /// `cpu` (default).
    pub hardware: Option<String>,
    /// Bytes of KV cache per replica, 4 MiB to 256 GiB (default: the installation's).
    #[schema(minimum = 4194304, maximum = 274877906944_u64)]
    pub kv_cache_memory: Option<u64>,
    /// Cap on prompt plus completion tokens, 16 to 16777216 (default: the model's).
    #[schema(minimum = 16, maximum = 16777216)]
    pub max_model_len: Option<u64>,
    /// `none` (default) or `shared`.
    #[schema(pattern = "^(none|shared)$")]
    pub overflow: Option<String>,
}

/// New replicas for a deployment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentUpdate {
    pub replicas: ReplicaRange,
}

/// Why an operator rejects a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRejection {
    /// 1 to 500 characters, not blank, no control characters; shown to the organization.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub reason: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OperatorDeploymentQuery {
    /// Only deployments in this state (default `requested`).
    pub state: Option<State>,
}

/// Every organization's deployments in one state (operator).
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorDeploymentList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<OperatorDeploymentObject>,
}

/// A deployment with its organization (operator).
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorDeploymentObject {
    pub organization_id: String,
    #[serde(flatten)]
    pub deployment: DeploymentObject,
}

fn actor_of(principal: &Principal) -> String {
    let (kind, id) = principal.actor();
    format!("{kind}:{id}")
}

fn check_replicas(state: &AppState, r: ReplicaRange) -> Result<ReplicaRange, ApiError> {
    let most = state.config.deployments.max_replicas;
    if r.min < 1 || r.max < r.min || r.max > most {
        return Err(ApiError::invalid(
            "replicas",
            format!("'replicas' must have 1 <= min <= max <= {most}."),
        ));
    }
    Ok(r)
}

fn deployment_name(state: &AppState, raw: &str) -> Result<String, ApiError> {
    if raw.is_empty()
        || raw.len() > MAX_DEPLOYMENT_NAME
        || !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ApiError::invalid(
            "name",
            format!("'name' must be 1 to {MAX_DEPLOYMENT_NAME} letters, digits, '-', '_' or '.'."),
        ));
    }
    let shared = state
        .inference
        .models()
        .map(|cards| cards.iter().any(|c| c.id.eq_ignore_ascii_case(raw)))
        .unwrap_or(false)
        || state.deployments.base(raw).is_some();
    if shared {
        return Err(ApiError::invalid(
            "name",
            format!("'{raw}' is the name of a shared model; choose another name."),
        ));
    }
    Ok(raw.to_owned())
}

/// Request a private deployment. It waits for a platform operator's approval (unless the
/// installation approves automatically), then its replicas start.
#[utoipa::path(post, path = "/v1/organization/deployments", tag = "Deployments",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)")),
    request_body = DeploymentCreate,
    responses((status = 201, body = DeploymentObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: JsonBody<DeploymentCreate>,
) -> Result<HttpResponse, ApiError> {
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        principal.require_organization(Permission::ManageDeployments)?;
        let body = body.parse()?;
        Ok::<HttpResponse, ApiError>(
            HttpResponse::Created().json(create(&state, &principal, body).await?),
        )
    })
    .await
}

/// Creates a deployment (the API's and the console's action).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: DeploymentCreate,
) -> Result<DeploymentObject, ApiError> {
    principal.require_organization(Permission::ManageDeployments)?;
    let config = &state.config.deployments;
    let name = deployment_name(state, &body.name)?;
    let Some(base) = state.deployments.base(&body.model) else {
        let deployable: Vec<&str> = state
            .deployments
            .bases()
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        return Err(ApiError::invalid(
            "model",
            format!(
                "Model '{}' cannot be deployed here; deployable models: {}.",
                body.model,
                deployable.join(", ")
            ),
        ));
    };
    let replicas = check_replicas(
        state,
        body.replicas.unwrap_or(ReplicaRange { min: 1, max: 1 }),
    )?;
    let hardware = body.hardware.as_deref().unwrap_or("cpu");
    if hardware != "cpu" {
        return Err(ApiError::invalid(
            "hardware",
            format!("'hardware' must be 'cpu' (this installation has no '{hardware}' engine)."),
        ));
    }
    let kv_cache_memory = body.kv_cache_memory.unwrap_or(config.kv_cache_memory);
    if !(MIN_KV_CACHE..=MAX_KV_CACHE).contains(&kv_cache_memory) {
        return Err(ApiError::invalid(
            "kv_cache_memory",
            format!("'kv_cache_memory' must be between {MIN_KV_CACHE} and {MAX_KV_CACHE} bytes."),
        ));
    }
    if let Some(len) = body.max_model_len {
        if !(16..=1 << 24).contains(&len) {
            return Err(ApiError::invalid(
                "max_model_len",
                "'max_model_len' must be between 16 and 16777216.",
            ));
        }
    }
    let overflow = body.overflow.as_deref().unwrap_or("none");
    if !matches!(overflow, "none" | "shared") {
        return Err(ApiError::invalid(
            "overflow",
            "'overflow' must be 'none' or 'shared'.",
        ));
    }
    let existing = state.store.count_deployments(&principal.tenant_id).await?;
    if existing >= config.max_per_organization {
        return Err(ApiError::Conflict(format!(
            "The organization has {existing} deployments, the most it may have; delete one first."
        )));
    }
    let first = match config.approval {
        Approval::Operator => State::Requested,
        Approval::Auto => State::Provisioning,
    };
    let actor = actor_of(principal);
    let d = state
        .store
        .create_deployment(&NewDeployment {
            tenant_id: &principal.tenant_id,
            name: &name,
            model: &base.name,
            hardware,
            replicas_min: replicas.min,
            replicas_max: replicas.max,
            kv_cache_memory: kv_cache_memory as i64,
            max_model_len: body.max_model_len.map(|l| l as i64),
            overflow,
            state: first.as_str(),
            created_by: &actor,
        })
        .await?;
    // Its tokens are free (the capacity is what is paid) until an operator prices them.
    state
        .store
        .seed_price(
            &price_key(&d.id),
            Prices {
                input_micros_per_million: 0,
                cached_input_micros_per_million: 0,
                output_micros_per_million: 0,
            },
        )
        .await?;
    audit(state, principal, "deployment.created", "deployment", &d.id).await?;
    state.deployments.refresh().await?;
    Ok(DeploymentObject::from(d))
}

/// List the organization's deployments.
#[utoipa::path(get, path = "/v1/organization/deployments", tag = "Deployments",
    params(DeploymentListQuery),
    responses((status = 200, body = DeploymentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deployments(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<DeploymentListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &principal, query).await?))
}

/// The organization's deployments (the API's and the console's listing).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    query: DeploymentListQuery,
) -> Result<DeploymentList, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    let page = ListQuery {
        limit: query.limit,
        after: query.after,
    }
    .page()?;
    let listed = state
        .store
        .list_deployments(&principal.tenant_id, query.include_deleted, &page)
        .await?;
    Ok(DeploymentList::from(listed.map(DeploymentObject::from)))
}

/// Retrieve a deployment.
#[utoipa::path(get, path = "/v1/organization/deployments/{deployment_id}", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    let d = state.store.deployment(&principal.tenant_id, &path).await?;
    Ok(HttpResponse::Ok().json(DeploymentObject::from(d)))
}

/// A deployment's history of states, oldest first.
#[utoipa::path(get, path = "/v1/organization/deployments/{deployment_id}/events", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentEventList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deployment_events(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    // 404 for another organization's id, before anything else.
    state.store.deployment(&principal.tenant_id, &path).await?;
    let events = state
        .store
        .deployment_events(&principal.tenant_id, &path)
        .await?;
    Ok(HttpResponse::Ok().json(DeploymentEventList {
        object: "list",
        data: events.into_iter().map(Into::into).collect(),
    }))
}

/// What moving a deployment needs besides where it goes.
struct Move<'a> {
    tenant_id: &'a TenantId,
    id: &'a str,
    from: &'a [State],
    to: State,
    actor: &'a str,
    message: Option<&'a str>,
    replicas: Option<ReplicaRange>,
    /// What the caller tried, for the 409 (`stop`, `start`...).
    verb: &'a str,
}

/// Moves a deployment, closing its running billing period first when it stops serving or its
/// replicas change; 409 naming the state when it is not in one of `from`.
async fn move_deployment(state: &AppState, m: Move<'_>) -> Result<Deployment, ApiError> {
    let before = state.store.deployment(m.tenant_id, m.id).await?;
    let from = names(m.from);
    let moved = transition_billed(
        &state.store,
        &state.config.deployments,
        &before,
        &Transition {
            from: &from,
            to: m.to.as_str(),
            actor: m.actor,
            message: m.message,
            replicas: m.replicas.map(|r| (r.min, r.max)),
            target: None,
        },
    )
    .await?;
    let d = match moved {
        Moved::Moved(d) => d,
        Moved::Refused(d) => {
            return Err(ApiError::Conflict(format!(
                "Deployment '{}' is {}; it cannot {} now (possible from: {}).",
                d.name,
                d.state,
                m.verb,
                from.join(", ")
            )))
        }
    };
    state.deployments.refresh().await?;
    Ok(d)
}

/// Change how many replicas a deployment runs. A serving deployment goes to `scaling` until
/// the new count is ready; one that is not running yet keeps its state.
#[utoipa::path(post, path = "/v1/organization/deployments/{deployment_id}", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    request_body = DeploymentUpdate,
    responses((status = 200, body = DeploymentObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: JsonBody<DeploymentUpdate>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageDeployments)?;
    let body = body.parse()?;
    Ok(HttpResponse::Ok().json(update(&state, &principal, &path, body.replicas).await?))
}

/// Changes a deployment's replicas (the API's and the console's action).
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: &str,
    replicas: ReplicaRange,
) -> Result<DeploymentObject, ApiError> {
    principal.require_organization(Permission::ManageDeployments)?;
    let replicas = check_replicas(state, replicas)?;
    let current = state.store.deployment(&principal.tenant_id, id).await?;
    let (from, to) = match State::parse(&current.state) {
        Some(State::Ready | State::Scaling) => (vec![State::Ready, State::Scaling], State::Scaling),
        Some(s @ (State::Requested | State::Provisioning | State::Stopped | State::Failed)) => {
            (vec![s], s)
        }
        _ => (vec![State::Ready, State::Scaling], State::Scaling),
    };
    let actor = actor_of(principal);
    let d = move_deployment(
        state,
        Move {
            tenant_id: &principal.tenant_id,
            id,
            from: &from,
            to,
            actor: &actor,
            message: None,
            replicas: Some(replicas),
            verb: "change its replicas",
        },
    )
    .await?;
    audit(state, principal, "deployment.updated", "deployment", &d.id).await?;
    Ok(DeploymentObject::from(d))
}

/// What an organization's member can do to a deployment besides scaling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
    Delete,
}

/// Stops, starts or deletes a deployment (the API's and the console's action).
pub async fn act(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<DeploymentObject, ApiError> {
    principal.require_organization(Permission::ManageDeployments)?;
    let deletable: Vec<State> = State::ALL
        .into_iter()
        .filter(|s| !matches!(s, State::Deleting | State::Deleted))
        .collect();
    let (from, to, verb, audited): (&[State], State, &str, &str) = match action {
        Action::Stop => (
            &[State::Provisioning, State::Ready, State::Scaling],
            State::Stopping,
            "stop",
            "deployment.stopped",
        ),
        Action::Start => (
            &[State::Stopped, State::Failed],
            State::Provisioning,
            "start",
            "deployment.started",
        ),
        Action::Delete => (
            &deletable,
            State::Deleting,
            "be deleted",
            "deployment.deleted",
        ),
    };
    let actor = actor_of(principal);
    let d = move_deployment(
        state,
        Move {
            tenant_id: &principal.tenant_id,
            id,
            from,
            to,
            actor: &actor,
            message: None,
            replicas: None,
            verb,
        },
    )
    .await?;
    audit(state, principal, audited, "deployment", &d.id).await?;
    Ok(DeploymentObject::from(d))
}

/// Stop a deployment: its replicas finish what they run, then stop; reserved capacity is no
/// longer charged. Its requests get 503 `deployment_not_ready` until it is started again.
#[utoipa::path(post, path = "/v1/organization/deployments/{deployment_id}/stop", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stop_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(act(&state, &principal, &path, Action::Stop).await?))
}

/// Start a stopped (or failed) deployment again.
#[utoipa::path(post, path = "/v1/organization/deployments/{deployment_id}/start", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(act(&state, &principal, &path, Action::Start).await?))
}

/// Delete a deployment: its replicas stop and it goes to `deleting`, then `deleted` (its name
/// is free again; its history and charges stay).
#[utoipa::path(delete, path = "/v1/organization/deployments/{deployment_id}", tag = "Deployments",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(act(&state, &principal, &path, Action::Delete).await?))
}

/// Every organization's deployments in one state, oldest first (operator only): what waits
/// for approval by default.
#[utoipa::path(get, path = "/v1/billing/admin/deployments", tag = "Billing administration",
    params(OperatorDeploymentQuery),
    responses((status = 200, body = OperatorDeploymentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn operator_list_deployments(
    state: web::Data<AppState>,
    _operator: Operator,
    QueryArgs(query): QueryArgs<OperatorDeploymentQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(operator_list(&state, query.state.map(State::as_str)).await?))
}

/// Every organization's deployments in state `wanted` (default `requested`), oldest first.
pub async fn operator_list(
    state: &AppState,
    wanted: Option<&str>,
) -> Result<OperatorDeploymentList, ApiError> {
    let wanted = wanted.unwrap_or("requested");
    let Some(s) = State::parse(wanted) else {
        return Err(ApiError::invalid(
            "state",
            format!("'{wanted}' is not a deployment state."),
        ));
    };
    let found = state.store.deployments_in(&[s.as_str()]).await?;
    Ok(OperatorDeploymentList {
        object: "list",
        data: found
            .into_iter()
            .map(|d| OperatorDeploymentObject {
                organization_id: d.tenant_id.to_string(),
                deployment: d.into(),
            })
            .collect(),
    })
}

/// The organization of a deployment, for an operator who knows only its id.
async fn owner_of(state: &AppState, id: &str) -> Result<TenantId, ApiError> {
    state
        .store
        .deployment_owner(id)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", id))
}

/// Approve a requested deployment (operator only): its replicas start.
#[utoipa::path(post, path = "/v1/billing/admin/deployments/{deployment_id}/approve", tag = "Billing administration",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn approve_deployment(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(approve(&state, &operator, &req, &path).await?))
}

/// Approves a requested deployment as `operator` (the API's route and the console's form).
pub async fn approve(
    state: &AppState,
    operator: &Operator,
    req: &HttpRequest,
    id: &str,
) -> Result<DeploymentObject, ApiError> {
    decide(state, operator, req, id, None).await
}

/// Rejects a requested deployment as `operator`, with a reason the organization sees.
pub async fn reject(
    state: &AppState,
    operator: &Operator,
    req: &HttpRequest,
    id: &str,
    reason: &str,
) -> Result<DeploymentObject, ApiError> {
    let reason = &super::validate::text("reason", reason, 500)?;
    decide(state, operator, req, id, Some(reason)).await
}

/// An operator's decision on a requested deployment: approved without a reason, rejected with
/// one.
async fn decide(
    state: &AppState,
    operator: &Operator,
    req: &HttpRequest,
    id: &str,
    rejection: Option<&str>,
) -> Result<DeploymentObject, ApiError> {
    let tenant = owner_of(state, id).await?;
    let actor = operator.actor();
    let (to, verb, audited) = match rejection {
        None => (State::Provisioning, "be approved", "deployment.approved"),
        Some(_) => (State::Rejected, "be rejected", "deployment.rejected"),
    };
    let d = move_deployment(
        state,
        Move {
            tenant_id: &tenant,
            id,
            from: &[State::Requested],
            to,
            actor: &actor,
            message: rejection,
            replicas: None,
            verb,
        },
    )
    .await?;
    super::billing::audit_operator(
        state,
        operator,
        req,
        &tenant,
        audited,
        ("deployment", &d.id),
    )
    .await?;
    Ok(DeploymentObject::from(d))
}

/// Reject a requested deployment (operator only), with a reason the organization sees.
#[utoipa::path(post, path = "/v1/billing/admin/deployments/{deployment_id}/reject", tag = "Billing administration",
    params(("deployment_id" = String, Path, description = "The deployment's id")),
    request_body = DeploymentRejection,
    responses((status = 200, body = DeploymentObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn reject_deployment(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<DeploymentRejection>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    Ok(HttpResponse::Ok().json(reject(&state, &operator, &req, &path, &body.reason).await?))
}

/// A row of the reserved-capacity price catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityPriceObject {
    pub id: String,
    /// Always `billing.capacity_price`.
    #[schema(example = "billing.capacity_price")]
    pub object: &'static str,
    /// `cpu` (or `cuda` once that engine exists).
    pub hardware: String,
    /// Always `usd`.
    pub currency: &'static str,
    /// What one replica costs for one hour, micro-USD.
    pub micros_per_replica_hour: i64,
    /// Unix seconds from which it applies (0: since the beginning).
    pub effective_at: i64,
    pub created_at: i64,
    /// `config` or `operator:<name>`.
    pub created_by: String,
}

impl From<CapacityPrice> for CapacityPriceObject {
    fn from(p: CapacityPrice) -> Self {
        CapacityPriceObject {
            id: p.id,
            object: "billing.capacity_price",
            hardware: p.hardware,
            currency: "usd",
            micros_per_replica_hour: p.micros_per_replica_hour,
            effective_at: ms_to_secs(p.effective_ms),
            created_at: ms_to_secs(p.created_ms),
            created_by: p.created_by,
        }
    }
}

/// The capacity catalog, by hardware then effective time.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityPriceList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<CapacityPriceObject>,
}

/// A new capacity price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityPriceCreate {
    /// `cpu`.
    pub hardware: String,
    /// Micro-USD per replica-hour, 0 to 1,000,000,000.
    #[schema(minimum = 0, maximum = 1000000000)]
    pub micros_per_replica_hour: i64,
    /// Unix seconds, at least one second from now (a price never changes the past); default:
    /// the next whole second.
    pub effective_at: Option<i64>,
}

/// The prices of reserved capacity (what a deployment's replica costs per hour, and from
/// when): a period is charged at the row in force at its start.
#[utoipa::path(get, path = "/v1/billing/capacity_prices", tag = "Billing",
    responses((status = 200, body = CapacityPriceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_capacity_prices(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::ReadUsage)?;
    capacity_price(&state.store, &state.config.deployments, "cpu", now_ms()).await?;
    let prices = state.store.capacity_prices().await?;
    Ok(HttpResponse::Ok().json(CapacityPriceList {
        object: "list",
        data: prices.into_iter().map(Into::into).collect(),
    }))
}

/// Add a capacity price (operator only): periods that start from `effective_at` on are charged
/// at it; earlier ones keep theirs.
#[utoipa::path(post, path = "/v1/billing/admin/capacity_prices", tag = "Billing administration",
    request_body = CapacityPriceCreate,
    responses((status = 201, body = CapacityPriceObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn create_capacity_price(
    state: web::Data<AppState>,
    operator: Operator,
    body: JsonBody<CapacityPriceCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    if body.hardware != "cpu" {
        return Err(ApiError::invalid(
            "hardware",
            "'hardware' must be 'cpu' (the only engine of this installation).",
        ));
    }
    if !(0..=1_000_000_000).contains(&body.micros_per_replica_hour) {
        return Err(ApiError::invalid(
            "micros_per_replica_hour",
            "'micros_per_replica_hour' must be between 0 and 1000000000.",
        ));
    }
    let earliest_ms = now_ms() + crate::billing::catalog::MIN_NOTICE_MS;
    let effective_ms = match body.effective_at {
        Some(secs) => secs
            .checked_mul(1000)
            .filter(|ms| *ms >= earliest_ms)
            .ok_or_else(|| {
                ApiError::invalid(
                    "effective_at",
                    "'effective_at' must be at least one second in the future: a price change \
                     never rewrites the past.",
                )
            })?,
        None => (earliest_ms + 999).div_euclid(1000) * 1000,
    };
    // Periods before it keep the configured price they had.
    capacity_price(&state.store, &state.config.deployments, "cpu", now_ms()).await?;
    let price = state
        .store
        .add_capacity_price(
            &body.hardware,
            body.micros_per_replica_hour,
            effective_ms,
            &operator.actor(),
        )
        .await?;
    tracing::info!(operator = %operator.name, price_id = %price.id, "capacity price added");
    Ok(HttpResponse::Created().json(CapacityPriceObject::from(price)))
}
