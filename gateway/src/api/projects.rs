//! `/v1/organization/projects`: list, create, retrieve, modify, archive.

use crate::store::ProjectId;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{JsonBody, QueryArgs};
use super::idempotency;
use super::list::{list_of, HasId, ListQuery};
use super::{audit, validate};
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::api_keys::KeyLimits;
use crate::store::{ms_to_secs, projects::Project};

/// A project: the unit that owns API keys, usage and limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectObject {
    pub id: String,
    /// Always `organization.project`.
    #[schema(example = "organization.project")]
    pub object: &'static str,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, null while active.
    pub archived_at: Option<i64>,
    /// `active` or `archived`.
    #[schema(example = "active")]
    pub status: &'static str,
    /// Rate limits shared by all the project's keys; unset ones are the plan's. A key's own
    /// limits take precedence.
    pub limits: KeyLimits,
    /// Browser origins whose pages may call the API with this project's keys (CORS); empty:
    /// none (the default).
    #[schema(example = json!(["https://demo.example.com"]))]
    pub allowed_origins: Vec<String>,
}

impl From<Project> for ProjectObject {
    fn from(p: Project) -> Self {
        ProjectObject {
            id: p.id.into_string(),
            object: "organization.project",
            name: p.name,
            created_at: ms_to_secs(p.created_ms),
            archived_at: p.archived_ms.map(ms_to_secs),
            status: if p.archived_ms.is_some() {
                "archived"
            } else {
                "active"
            },
            limits: p.limits,
            allowed_origins: p.allowed_origins,
        }
    }
}

impl HasId for ProjectObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(ProjectList, ProjectObject);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectListQuery {
    /// How many objects to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The id of the last object of the previous page.
    pub after: Option<String>,
    /// Include archived projects (default false).
    #[serde(default)]
    pub include_archived: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreate {
    /// 1 to 128 characters (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Rate limits shared by all the project's keys (positive integers).
    pub limits: Option<KeyLimits>,
    /// Browser origins (`https://app.example.com`, `http://localhost:5173`: scheme, host and
    /// port) whose pages may call the API with the project's keys. Default: none.
    #[schema(max_items = 20)]
    pub allowed_origins: Option<Vec<String>>,
}

/// Changes to a project: a new name, new rate limits, new allowed origins, or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// 1 to 128 characters (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Replaces all of the project's limits: a field left out or `null` falls back to the
    /// plan's limit.
    pub limits: Option<KeyLimits>,
    /// Replaces the browser origins allowed to call the API with the project's keys (`[]`
    /// turns CORS off for the project).
    #[schema(max_items = 20)]
    pub allowed_origins: Option<Vec<String>>,
}

/// List the organization's projects (a project key with the `admin` scope sees its own).
#[utoipa::path(get, path = "/v1/organization/projects", tag = "Projects",
    params(ProjectListQuery),
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_projects(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ProjectListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &principal, query).await?))
}

/// The projects `principal` may see (shared by the JSON API and the console).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    query: ProjectListQuery,
) -> Result<ProjectList, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    let page = ListQuery {
        limit: query.limit,
        after: query.after,
    }
    .page()?;
    let projects = state
        .store
        .list_projects(&principal.tenant_id, query.include_archived, &page)
        .await?;
    Ok(ProjectList::from(projects.map(ProjectObject::from)))
}

/// Create a project.
#[utoipa::path(post, path = "/v1/organization/projects", tag = "Projects",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)")),
    request_body = ProjectCreate,
    responses((status = 201, body = ProjectObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_project(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: JsonBody<ProjectCreate>,
) -> Result<HttpResponse, ApiError> {
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        principal.require_organization(Permission::ManageProjects)?;
        let body = body.parse()?;
        Ok::<HttpResponse, ApiError>(
            HttpResponse::Created().json(create(&state, &principal, body).await?),
        )
    })
    .await
}

/// Creates a project (shared by the JSON API and the console).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: ProjectCreate,
) -> Result<ProjectObject, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let name = validate::name("name", &body.name)?;
    let limits = body
        .limits
        .map(|l| validate::limits("limits", l))
        .transpose()?;
    let origins = body
        .allowed_origins
        .map(|o| super::cors::origins("allowed_origins", &o))
        .transpose()?;
    let mut project = state
        .store
        .create_project(&principal.tenant_id, &name)
        .await?;
    if let Some(limits) = limits {
        project = state
            .store
            .set_project_limits(&principal.tenant_id, &project.id, limits)
            .await?;
    }
    if let Some(origins) = origins.filter(|o| !o.is_empty()) {
        project = state
            .store
            .set_project_origins(&principal.tenant_id, &project.id, &origins)
            .await?;
        state.cors.invalidate();
    }
    audit(state, principal, "project.created", "project", &project.id).await?;
    Ok(ProjectObject::from(project))
}

/// Retrieve a project.
#[utoipa::path(get, path = "/v1/organization/projects/{project_id}", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    responses((status = 200, body = ProjectObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_project(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_project(Permission::ReadOrganization, &path)?;
    let project = state
        .store
        .project(&principal.tenant_id, &ProjectId::from(path.as_str()))
        .await?;
    Ok(HttpResponse::Ok().json(ProjectObject::from(project)))
}

/// Rename a project or set its rate limits (archived projects cannot be modified: 409).
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    request_body = ProjectUpdate,
    responses((status = 200, body = ProjectObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn modify_project(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: JsonBody<ProjectUpdate>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let body = body.parse()?;
    Ok(HttpResponse::Ok().json(update(&state, &principal, &path, body).await?))
}

/// Renames a project and/or sets its limits (the API's and the console's action).
pub async fn update(
    state: &AppState,
    principal: &Principal,
    project_id: &str,
    body: ProjectUpdate,
) -> Result<ProjectObject, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let path = project_id;
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    let limits = body
        .limits
        .map(|l| validate::limits("limits", l))
        .transpose()?;
    let origins = body
        .allowed_origins
        .map(|o| super::cors::origins("allowed_origins", &o))
        .transpose()?;
    let path = &ProjectId::from(path);
    let mut project = state.store.project(&principal.tenant_id, path).await?;
    if name.is_none() && limits.is_none() && origins.is_none() {
        // Nothing to change: the project as it is, and nothing audited.
        return Ok(ProjectObject::from(project));
    }
    if let Some(name) = &name {
        project = state
            .store
            .rename_project(&principal.tenant_id, path, name)
            .await?;
    }
    if let Some(limits) = limits {
        project = state
            .store
            .set_project_limits(&principal.tenant_id, path, limits)
            .await?;
    }
    if let Some(origins) = origins {
        project = state
            .store
            .set_project_origins(&principal.tenant_id, path, &origins)
            .await?;
        state.cors.invalidate();
    }
    audit(state, principal, "project.updated", "project", &project.id).await?;
    Ok(ProjectObject::from(project))
}

/// Archive a project: its API keys stop working at once.
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}/archive", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    responses((status = 200, body = ProjectObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn archive_project(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let project = state
        .store
        .archive_project(&principal.tenant_id, &ProjectId::from(path.as_str()))
        .await?;
    state.cors.invalidate();
    audit(
        &state,
        &principal,
        "project.archived",
        "project",
        &project.id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(ProjectObject::from(project)))
}
