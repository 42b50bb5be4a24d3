//! Private deployments: the organization's deployments with their state, replicas, the name
//! requests use and the capacity charged so far; the request form; scale, stop, start and
//! delete. Approval is the platform operator's (`/operator/deployments`, or
//! `/v1/billing/admin/deployments`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::layout::{csrf_field, not_allowed, Ctx, Form, PageResult, Section};
use super::{html as page, see_other, PageError};
use gateway::api::deployments::{
    self, Action, DeploymentCreate, DeploymentListQuery, ReplicaRange,
};
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::server::AppState;
use gateway::store::money::Money;

async fn deployments_page(state: &AppState, ctx: &Ctx) -> Result<Markup, PageError> {
    let listed = deployments::list(
        state,
        &ctx.principal,
        DeploymentListQuery {
            limit: Some(100),
            after: None,
            include_deleted: false,
        },
    )
    .await?;
    let mut charged = Vec::with_capacity(listed.data.len());
    for d in &listed.data {
        let charges = state
            .store
            .deployment_charges(&ctx.principal.tenant_id, &d.id)
            .await?;
        charged.push(Money::from_micros(
            charges.iter().map(|c| c.amount.micros()).sum(),
        ));
    }
    let manage = ctx.can(Permission::ManageDeployments);
    let bases = state.deployments.bases();
    Ok(super::layout::layout(
        ctx,
        Section::Deployments,
        "Deployments",
        html! {
            p.muted { "Private deployments are replicas of a model that only this organization's keys reach: put the deployment's name in " code { "model" } ". A platform operator approves each request; reserved capacity is charged per replica-hour while it is ready." }
            @if listed.data.is_empty() { p.muted #no-deployments { "No deployments yet." } }
            @else {
                table #deployments {
                    thead { tr {
                        th { "Name (use as model)" } th { "Model" } th { "State" }
                        th { "Replicas" } th { "Ready of running" } th { "Charged so far" } th { "Actions" }
                    } }
                    tbody {
                        @for (d, cost) in listed.data.iter().zip(&charged) {
                            tr data-deployment=(d.id) {
                                td { code { (d.name) } }
                                td { (d.model) }
                                td.state {
                                    (d.state)
                                    @if let Some(message) = &d.status_message { br; small.muted { (message) } }
                                }
                                td.n { (d.replicas.min) "–" (d.replicas.max) }
                                td.n { (d.ready_replicas) " of " (d.target_replicas) }
                                td.n { (cost) }
                                td {
                                    @if manage {
                                        form.inline method="post" action=(format!("/deployments/{}/replicas", d.id)) {
                                            (csrf_field(&ctx.csrf))
                                            label { "Replicas " input type="number" name="min" min="1" value=(d.replicas.min) required; }
                                            label { " to " input type="number" name="max" min="1" value=(d.replicas.max) required; }
                                            button type="submit" { "Scale" }
                                        }
                                        @for (action, label) in [("stop", "Stop"), ("start", "Start"), ("delete", "Delete")] {
                                            form.inline method="post" action=(format!("/deployments/{}/{action}", d.id)) {
                                                (csrf_field(&ctx.csrf))
                                                button type="submit" { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Request a deployment" }
            @if manage {
                form.stack #request-deployment method="post" action="/deployments" {
                    (csrf_field(&ctx.csrf))
                    label { "Name " input name="name" required maxlength="64" pattern="[A-Za-z0-9._-]+"; }
                    label { "Model "
                        select name="model" {
                            @for b in bases { option value=(b.name) { (b.name) } }
                        }
                    }
                    label { "Replicas " input type="number" name="min" min="1" value="1" required; }
                    label { "At most (autoscaled under load) " input type="number" name="max" min="1" value="1" required; }
                    label { input type="checkbox" name="overflow" value="shared"; " Use the shared pool while no replica is ready" }
                    div { button type="submit" { "Request deployment" } }
                }
            } @else if let Some(note) = not_allowed(ctx, Permission::ManageDeployments) {
                (note)
            }
        },
    ))
}

pub async fn deployments(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(StatusCode::OK, deployments_page(&state, &ctx).await?))
}

fn replicas_of(form: &Form) -> Result<ReplicaRange, ApiError> {
    let number = |name: &str| {
        form.text(name)
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("replicas", format!("'{name}' must be a whole number.")))
    };
    Ok(ReplicaRange {
        min: number("min")?,
        max: number("max")?,
    })
}

pub async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    deployments::create(
        &state,
        &ctx.principal,
        DeploymentCreate {
            name: form.text("name").trim().to_owned(),
            model: form.text("model"),
            replicas: Some(replicas_of(&form)?),
            hardware: None,
            kv_cache_memory: None,
            max_model_len: None,
            overflow: form.optional("overflow"),
        },
    )
    .await?;
    Ok(see_other("/deployments"))
}

pub async fn scale(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    deployments::update(&state, &ctx.principal, &path, replicas_of(&form)?).await?;
    Ok(see_other("/deployments"))
}

pub async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let (id, action) = path.into_inner();
    let action = match action.as_str() {
        "stop" => Action::Stop,
        "start" => Action::Start,
        "delete" => Action::Delete,
        _ => return Err(ApiError::NotFound(format!("No action '{action}'.")).into()),
    };
    deployments::act(&state, &ctx.principal, &id, action).await?;
    Ok(see_other("/deployments"))
}
