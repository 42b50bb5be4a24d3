//! The audit log page (owners and admins, like `/v1/organization/audit_logs`), newest first,
//! filterable by action, paged with an "older entries" link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::layout::{query_param, time, Ctx, PageResult, Section};
use super::{html as page, see_other, PageError};
use gateway::api::list::ListQuery;
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::ms_to_secs;

const PAGE_SIZE: i64 = 50;

/// An action filter as the log writes them (`api_key.created`): bounded, no odd characters.
fn action_param(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(a)
            if a.len() > 64
                || !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') =>
        {
            Err(ApiError::invalid(
                "type",
                "'type' must be an action such as api_key.created.",
            ))
        }
        other => Ok(other),
    }
}

async fn audit_page(state: &AppState, ctx: &Ctx, req: &HttpRequest) -> Result<Markup, PageError> {
    ctx.principal
        .require_organization(Permission::ReadAuditLog)?;
    let action = action_param(query_param(req, "type"))?;
    let page = ListQuery {
        limit: Some(PAGE_SIZE),
        after: query_param(req, "after"),
    }
    .page()?;
    let entries = state
        .store
        .list_audit_logs(&ctx.principal.tenant_id, action.as_deref(), &page)
        .await?;
    let older = entries
        .items
        .last()
        .filter(|_| entries.has_more)
        .map(|last| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(a) = &action {
                q.append_pair("type", a);
            }
            q.append_pair("after", &last.id);
            format!("/audit?{}", q.finish())
        });
    let count = entries.items.len();
    Ok(super::layout::layout(
        ctx,
        Section::Audit,
        "Audit log",
        html! {
            form.filters method="get" action="/audit" {
                div { label for="action-filter" { "Action (e.g. api_key.created)" } input #action-filter type="text" name="type" value=[action.as_deref()] maxlength="64"; }
                div { button type="submit" { "Filter" } }
            }
            p #audit-count { (count) @if count == 1 { " entry" } @else { " entries" } @if page.after.is_some() { " (older page)" } }
            div.table-wrap {
                table #audit {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Action" } th scope="col" { "Actor" } th scope="col" { "Target" } th scope="col" { "IP" } } }
                    tbody {
                        @for e in &entries.items {
                            tr {
                                td { (time(ms_to_secs(e.created_ms))) }
                                td { code { (e.action) } }
                                td { (e.actor_type) " " code { (e.actor_id) } }
                                td { (e.target_type) " " code { (e.target_id) } }
                                td { (e.ip.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = older { p { a href=(href) { "Older entries" } } }
        },
    ))
}

pub async fn audit_log(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(StatusCode::OK, audit_page(&state, &ctx, &req).await?))
}
