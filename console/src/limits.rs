//! Rate limits of a project and of each of its keys: requests and tokens per minute and
//! requests at once. The rate limiter applies the tightest of key, project and plan.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use store::ProjectId;

use super::layout::{csrf_field, not_allowed, Ctx, Form, PageResult, Section};
use super::pages::describe_limits;
use super::pages::limit_inputs;
use super::pages::limits_of;
use super::{html as page, see_other, PageError};
use gateway::api::api_keys::{self, ApiKeyUpdate};
use gateway::api::list::ListQuery;
use gateway::api::projects::{self, ProjectUpdate};
use gateway::auth::Permission;
use gateway::server::AppState;

async fn limits_page(state: &AppState, ctx: &Ctx, project_id: &str) -> Result<Markup, PageError> {
    ctx.principal
        .require_project(Permission::ReadOrganization, project_id)?;
    let project = state
        .store
        .project(&ctx.principal.tenant_id, &ProjectId::from(project_id))
        .await?;
    let keys = api_keys::list(
        state,
        &ctx.principal,
        project_id,
        &ListQuery {
            limit: Some(100),
            after: None,
        },
    )
    .await?;
    let manage_project = ctx.can(Permission::ManageProjects);
    let manage_keys = ctx.can(Permission::ManageApiKeys);
    let base = format!("/projects/{}", project.id);
    Ok(super::layout::layout(
        ctx,
        Section::Projects,
        &format!("Rate limits · {}", project.name),
        html! {
            p { a href=(format!("{base}/keys")) { "← API keys of " (project.name) } }
            p.muted { "A request must fit its key's limits, its project's and the organization plan's: the tightest applies. Empty fields mean no override." }
            h2 { "Project" }
            p #project-limits { (describe_limits(&project.limits)) }
            @if manage_project {
                form.stack method="post" action=(format!("{base}/limits")) {
                    (csrf_field(&ctx.csrf))
                    fieldset {
                        legend { "Limits for all of " (project.name) "'s keys together" }
                        (limit_inputs("project", &project.limits))
                    }
                    div { button type="submit" { "Save project limits" } }
                }
            } @else if let Some(note) = not_allowed(ctx, Permission::ManageProjects) {
                (note)
            }
            h2 { "Browser origins" }
            p.muted { "Pages of these origins may call the API with this project's keys from a browser (CORS). None: browsers cannot." }
            @if project.allowed_origins.is_empty() {
                p #project-origins { "No origin allowed." }
            } @else {
                ul #project-origins { @for origin in &project.allowed_origins { li { code { (origin) } } } }
            }
            @if manage_project {
                form.stack method="post" action=(format!("{base}/origins")) {
                    (csrf_field(&ctx.csrf))
                    label {
                        "Allowed origins, one per line (like https://app.example.com or http://localhost:5173)"
                        textarea name="allowed_origins" rows="3" { (project.allowed_origins.join("\n")) }
                    }
                    div { button type="submit" { "Save origins" } }
                }
            }
            h2 { "Keys" }
            @if keys.data.is_empty() { p.muted { "This project has no live keys." } }
            @for k in &keys.data {
                section.key-limits aria-labelledby=(format!("limits-{}", k.id)) {
                    h3 id=(format!("limits-{}", k.id)) { (k.name) " " code { (k.redacted_value) } }
                    p.limits { (describe_limits(&k.limits)) }
                    @if manage_keys {
                        form.stack method="post" action=(format!("{base}/keys/{}/limits", k.id)) {
                            (csrf_field(&ctx.csrf))
                            fieldset {
                                legend { "Limits of " (k.name) }
                                (limit_inputs(&k.id, &k.limits))
                            }
                            div { button type="submit" { "Save limits of " (k.name) } }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn limits(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(
        StatusCode::OK,
        limits_page(&state, &ctx, &path).await?,
    ))
}

pub async fn set_project_limits(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    ctx.principal
        .require_organization(Permission::ManageProjects)?;
    let project = projects::update(
        &state,
        &ctx.principal,
        &path,
        ProjectUpdate {
            name: None,
            limits: Some(limits_of(&form)?),
            allowed_origins: None,
        },
    )
    .await?;
    Ok(see_other(&format!("/projects/{}/limits", project.id)))
}

/// Replaces the project's allowed browser origins (one per line of the form's text).
pub async fn set_project_origins(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let origins = form
        .text("allowed_origins")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let project = projects::update(
        &state,
        &ctx.principal,
        &path,
        ProjectUpdate {
            name: None,
            limits: None,
            allowed_origins: Some(origins),
        },
    )
    .await?;
    Ok(see_other(&format!("/projects/{}/limits", project.id)))
}

pub async fn set_key_limits(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let (project_id, key_id) = path.into_inner();
    ctx.principal
        .require_project(Permission::ManageApiKeys, &project_id)?;
    api_keys::update(
        &state,
        &ctx.principal,
        &project_id,
        &key_id,
        ApiKeyUpdate {
            name: None,
            limits: Some(limits_of(&form)?),
        },
    )
    .await?;
    Ok(see_other(&format!("/projects/{project_id}/limits")))
}
