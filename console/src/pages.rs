//! The console's project pages: projects, API keys (create, list, revoke) and the playground.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use store::{KeyId, ProjectId};

use super::session::{self};
use super::{html as page, see_other, PageError};
use gateway::api::api_keys::{ApiKeyCreate, CreatedApiKey};
use gateway::api::list::ListQuery;
use gateway::api::projects::{ProjectCreate, ProjectListQuery};
use gateway::api::{api_keys, projects};
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::api_keys::{KeyLimits, KeyOwner, Scope};

use super::layout::*;

// ---- projects ------------------------------------------------------------------------------

async fn projects_page(state: &AppState, ctx: &Ctx) -> Result<Markup, PageError> {
    let list = projects::list(
        state,
        &ctx.principal,
        ProjectListQuery {
            limit: Some(100),
            after: None,
            include_archived: false,
        },
    )
    .await?;
    let count = list.data.len();
    Ok(layout(
        ctx,
        Section::Projects,
        "Projects",
        html! {
            p #project-count { (count) @if count == 1 { " project" } @else { " projects" } }
            div.table-wrap {
                table {
                    caption.muted { "Active projects of " (ctx.organization) }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "ID" } th scope="col" { "Created" } th scope="col" { "Keys" } } }
                    tbody {
                        @for p in &list.data {
                            tr {
                                td { (p.name) }
                                td { code { (p.id) } }
                                td { (time(p.created_at)) }
                                td { a href=(format!("/projects/{}/keys", p.id)) { "API keys" span.skip { " of " (p.name) } } }
                            }
                        }
                    }
                }
            }
            @if let Some(note) = not_allowed(ctx, Permission::ManageProjects) {
                (note)
            } @else {
                h2 { "New project" }
                form.stack method="post" action="/projects" {
                    (csrf_field(&ctx.csrf))
                    div { label for="project-name" { "Project name" } input #project-name type="text" name="name" required maxlength="128"; }
                    div { button type="submit" { "Create project" } }
                }
            }
        },
    ))
}

pub async fn projects(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(StatusCode::OK, projects_page(&state, &ctx).await?))
}

pub async fn create_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let project = projects::create(
        &state,
        &ctx.principal,
        ProjectCreate {
            name: form.text("name"),
            limits: None,
            allowed_origins: None,
        },
    )
    .await?;
    Ok(see_other(&format!("/projects/{}/keys", project.id)))
}

// ---- API keys ------------------------------------------------------------------------------

async fn keys_page(
    state: &AppState,
    ctx: &Ctx,
    project_id: &str,
    created: Option<CreatedApiKey>,
) -> Result<Markup, PageError> {
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
    let count = keys.data.len();
    let manage = ctx.can(Permission::ManageApiKeys);
    Ok(layout(
        ctx,
        Section::Projects,
        &format!("API keys · {}", project.name),
        html! {
            p { a href="/projects" { "← All projects" } " · " a href=(format!("/projects/{}/limits", project.id)) { "Rate limits" } " · " a href=(format!("/usage?project={}&group=key", project.id)) { "Usage" } }
            @if let Some(created) = &created {
                div.notice role="status" {
                    p { "Key " strong { (created.key.name) } " created. Copy it now: it will not be shown again." }
                    div.secret {
                        code #new-key { (created.value) }
                        button.secondary type="button" data-copy="new-key" hidden { "Copy" }
                    }
                }
            }
            p #key-count { (count) @if count == 1 { " live key" } @else { " live keys" } }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Scopes" } th scope="col" { "Limits" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" } @if manage { th scope="col" { "Action" } } } }
                    tbody {
                        @for k in &keys.data {
                            tr {
                                td { (k.name) }
                                td { code { (k.redacted_value) } }
                                td { (k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (describe_limits(&k.limits)) }
                                td { (time(k.created_at)) }
                                td { @match k.expires_at { Some(t) => { (time(t)) } None => { "never" } } }
                                td { @match k.last_used_at { Some(t) => { (time(t)) } None => { "never" } } }
                                @if manage {
                                    td { a href=(format!("/projects/{}/keys/{}/revoke", project.id, k.id)) { "Revoke" span.skip { " " (k.name) } } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(note) = not_allowed(ctx, Permission::ManageApiKeys) {
                (note)
            } @else {
                h2 { "New key" }
                form.stack method="post" action=(format!("/projects/{}/keys", project.id)) {
                    (csrf_field(&ctx.csrf))
                    div { label for="key-name" { "Key name" } input #key-name type="text" name="name" required maxlength="128"; }
                    fieldset {
                        legend { "Scopes" }
                        label { input type="checkbox" name="scopes" value="inference" checked; "inference" }
                        label { input type="checkbox" name="scopes" value="usage:read"; "usage:read" }
                        label { input type="checkbox" name="scopes" value="admin"; "admin" }
                    }
                    div {
                        label for="key-expires" { "Expires (optional, end of that day UTC)" }
                        input #key-expires type="date" name="expires" aria-describedby="key-expires-hint";
                        small #key-expires-hint.muted { "Leave empty for a key that does not expire." }
                    }
                    fieldset {
                        legend { "Limits (optional; empty means the project's and plan's limits apply)" }
                        (limit_inputs("key", &KeyLimits::default()))
                    }
                    div { button type="submit" { "Create key" } }
                }
            }
        },
    ))
}

pub async fn keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(
        StatusCode::OK,
        keys_page(&state, &ctx, &path, None).await?,
    ))
}

/// Number inputs for rate limits, ids prefixed with `prefix`.
pub(super) fn limit_inputs(prefix: &str, limits: &KeyLimits) -> Markup {
    let field = |name: &str, label: &str, value: Option<i64>| {
        let id = format!("{prefix}-{name}");
        html! {
            div {
                label for=(id) { (label) }
                input id=(id) type="number" name=(name) min="1" step="1" value=[value];
            }
        }
    };
    html! {
        div.grid3 {
            (field("rpm", "Requests per minute", limits.rpm))
            (field("tpm", "Tokens per minute", limits.tpm))
            (field("concurrency", "Requests at once", limits.concurrency))
        }
    }
}

/// `rpm 60 · tpm 10000`, or "default".
pub(super) fn describe_limits(limits: &KeyLimits) -> String {
    let parts: Vec<String> = [
        ("rpm", limits.rpm),
        ("tpm", limits.tpm),
        ("concurrent", limits.concurrency),
    ]
    .iter()
    .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
    .collect();
    if parts.is_empty() {
        "default".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// The `rpm`, `tpm` and `concurrency` fields; blank ones are unset (checked by the API).
pub(super) fn limits_of(form: &Form) -> Result<KeyLimits, ApiError> {
    let number = |name: &str| {
        form.optional(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::invalid(name, format!("'{name}' must be a positive integer."))
                })
            })
            .transpose()
    };
    Ok(KeyLimits {
        rpm: number("rpm")?,
        tpm: number("tpm")?,
        concurrency: number("concurrency")?,
    })
}

/// Unix seconds of the last second of `YYYY-MM-DD` (UTC).
fn end_of_day(field: &str, date: &str) -> Result<i64, ApiError> {
    parse_date(date)
        .map(|day| day * 86_400 + 86_399)
        .ok_or_else(|| ApiError::invalid(field, format!("'{field}' must be a date (YYYY-MM-DD).")))
}

fn parse_scopes(values: &[&str]) -> Result<Vec<Scope>, ApiError> {
    values
        .iter()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String((*v).to_owned())).map_err(|_| {
                ApiError::invalid(
                    "scopes",
                    "'scopes' must be 'inference', 'usage:read' or 'admin'.",
                )
            })
        })
        .collect()
}

pub async fn create_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    // The role before the fields: a viewer learns nothing from a malformed form.
    ctx.principal
        .require_project(Permission::ManageApiKeys, &path)?;
    let created = api_keys::create(
        &state,
        &ctx.principal,
        &path,
        ApiKeyCreate {
            name: form.text("name"),
            scopes: Some(parse_scopes(&form.all("scopes"))?),
            expires_at: form
                .optional("expires")
                .map(|d| end_of_day("expires", &d))
                .transpose()?,
            limits: Some(limits_of(&form)?),
        },
    )
    .await?;
    Ok(page(
        StatusCode::OK,
        keys_page(&state, &ctx, &path, Some(created)).await?,
    ))
}

pub async fn confirm_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let (project_id, key_id) = path.into_inner();
    ctx.principal
        .require_project(Permission::ManageApiKeys, &project_id)?;
    let key = state
        .store
        .api_key(
            &ctx.principal.tenant_id,
            KeyOwner::Project(&project_id),
            &KeyId::from(key_id.as_str()),
        )
        .await?;
    let back = format!("/projects/{project_id}/keys");
    Ok(page(
        StatusCode::OK,
        layout(
            &ctx,
            Section::Projects,
            "Revoke key",
            html! {
                p { "Revoke " strong { (key.name) } " (" code { (gateway::auth::api_key::redacted(&key.prefix)) } ")? Requests with it are refused from that moment; this cannot be undone." }
                form method="post" action=(format!("{back}/{key_id}/revoke")) {
                    (csrf_field(&ctx.csrf))
                    button.danger type="submit" { "Revoke key" }
                    " "
                    a.button.secondary href=(back) { "Cancel" }
                }
            },
        ),
    ))
}

pub async fn revoke_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let (project_id, key_id) = path.into_inner();
    api_keys::revoke(&state, &ctx.principal, &project_id, &key_id).await?;
    Ok(see_other(&format!("/projects/{project_id}/keys")))
}

// ---- playground ----------------------------------------------------------------------------

pub async fn playground(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    ctx.principal.require(Permission::Inference)?;
    let token = session::playground_token(&state, &ctx.principal)?;
    let models = state.inference.models().unwrap_or_default();
    Ok(page(
        StatusCode::OK,
        layout(
            &ctx,
            Section::Playground,
            "Playground",
            html! {
                @if models.is_empty() {
                    p.error role="alert" { "No model is loaded. Run `starfire model fetch`, then restart `starfire serve`." }
                }
                p.muted { "Requests here run as you (this console session), not as an API key. Each message continues the conversation; tool calls are shown with a box for the tool's result." }
                h2 { "Conversation" }
                ol #conversation.conversation aria-live="polite" {}
                form #tool-results.stack hidden {
                    h3 { "Tool calls" }
                    div #tool-calls {}
                    div { button #send-results type="submit" { "Send tool results" } }
                }
                form #playground.stack data-token=(token) {
                    div {
                        label for="model" { "Model" }
                        select #model name="model" {
                            @for m in &models { option value=(m.id) { (m.id) } }
                        }
                    }
                    div.grid2 {
                        div { label for="temperature" { "Temperature" } input #temperature type="number" name="temperature" min="0" max="2" step="0.1" value="0.7"; }
                        div { label for="max_tokens" { "Max tokens" } input #max_tokens type="number" name="max_tokens" min="1" max="4096" step="1" value="64"; }
                        div { label for="top_p" { "Top p" } input #top_p type="number" name="top_p" min="0" max="1" step="0.05" value="1"; }
                    }
                    div { label for="system" { "System message (optional)" } textarea #system name="system" rows="2" {} }
                    fieldset {
                        legend { "Output" }
                        div { input #json_mode type="checkbox" name="json_mode"; " " label for="json_mode" { "JSON output" } }
                        div { label for="schema" { "JSON schema (optional; empty: any JSON object)" } textarea #schema name="schema" rows="3" placeholder=r#"{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}"# {} }
                    }
                    fieldset {
                        legend { "Tools" }
                        div { label for="tools" { "Functions the model may call (optional): a JSON array of tools" } textarea #tools name="tools" rows="4" placeholder=r#"[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]"# {} }
                        div {
                            label for="tool_choice" { "Tool choice" }
                            select #tool_choice name="tool_choice" {
                                option value="auto" { "auto" }
                                option value="required" { "required" }
                                option value="none" { "none" }
                            }
                        }
                    }
                    div { label for="prompt" { "Message" } textarea #prompt name="prompt" required { "Write one sentence about the sea." } }
                    div.actions { button type="submit" { "Send" } " " button.secondary #reset type="button" { "New conversation" } }
                }
                h2 { "Answer" }
                p #status role="status" aria-live="polite" { "Ready." }
                div #answer aria-live="polite" {}
                dl.stats {
                    dt { "Tokens/s" } dd #stat-rate { "–" }
                    dt { "Prompt tokens" } dd #stat-prompt { "–" }
                    dt { "Completion tokens" } dd #stat-completion { "–" }
                    dt { "Total tokens" } dd #stat-total { "–" }
                }
                h2 { "The same request in code" }
                p.muted { "Each snippet sends exactly the request above; replace the session with an API key of yours in STARFIRE_API_KEY." }
                @for (id, label) in [("curl", "curl"), ("python", "Python (openai package)"), ("typescript", "TypeScript (openai package)")] {
                    section.snippet aria-labelledby=(format!("{id}-title")) {
                        h3 id=(format!("{id}-title")) { (label) }
                        pre id=(id) tabindex="0" { "Enable JavaScript to see the " (label) " snippet." }
                        button.secondary type="button" data-copy=(id) hidden { "Copy " (label) " snippet" }
                    }
                }
            },
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn dates_parse_to_days_and_back() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(date_of(19_782 * 86_400), "2024-02-29");
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("nope"), None);
        assert_eq!(end_of_day("e", "1970-01-02").unwrap(), 2 * 86_400 - 1);
    }
}
