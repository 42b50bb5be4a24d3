//! The members page: the organization's members and their roles, invites, and the actions on
//! them (invite, change a role, remove a member after a confirmation, withdraw an invite). Each
//! action calls the JSON API's function (`api::users`, `api::invites`), which checks the role,
//! refuses to remove or demote the last owner and writes the audit entry.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::layout::{csrf_field, layout, not_allowed, time, Ctx, Form, PageResult, Section};
use super::{html as page, see_other, PageError};
use gateway::api::invites::{CreatedInvite, InviteCreate, InviteList};
use gateway::api::list::ListQuery;
use gateway::api::users::UserObject;
use gateway::api::{invites, users};
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::users::Role;
use store::UserId;

const ROLES: [Role; 5] = [
    Role::Owner,
    Role::Admin,
    Role::Developer,
    Role::Billing,
    Role::Viewer,
];

async fn members_page(
    state: &AppState,
    ctx: &Ctx,
    req: &HttpRequest,
    invited: Option<CreatedInvite>,
) -> Result<Markup, PageError> {
    let all = ListQuery {
        limit: Some(100),
        after: None,
    };
    let members = users::list(state, &ctx.principal, &all).await?;
    let manage = ctx.can(Permission::ManageMembers);
    let invites = if manage {
        Some(invites::list(state, &ctx.principal, &all).await?)
    } else {
        None
    };
    let count = members.data.len();
    let me = ctx.principal.user_id.as_deref();
    let owners = members
        .data
        .iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    // Who may be removed from here: only owners remove owners, and never the only owner (the
    // server refuses both whatever the page shows).
    let removable = |m: &UserObject| {
        manage
            && (m.role != Role::Owner
                || (ctx.principal.role == Some(Role::Owner) && (owners > 1 || members.has_more)))
    };
    let info = req.connection_info();
    let origin = format!("{}://{}", info.scheme(), info.host());
    Ok(layout(
        ctx,
        Section::Members,
        "Members",
        html! {
            @if let Some(created) = &invited {
                div.notice role="status" {
                    p { "Invite for " strong { (created.invite.email) } " created. Send them this link (shown once):" }
                    div.secret {
                        code #invite-link { (origin) "/invite?token=" (created.token) }
                        button.secondary type="button" data-copy="invite-link" hidden { "Copy" }
                    }
                }
            }
            p #member-count { (count) @if count == 1 { " member" } @else { " members" } }
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Joined" }
                        @if manage { th scope="col" { "Actions" } }
                    } }
                    tbody {
                        @for m in &members.data {
                            tr {
                                td { (m.name) }
                                td { (m.email) }
                                td {
                                    @if manage && Some(m.id.as_str()) != me {
                                        form.inline method="post" action=(format!("/members/{}/role", m.id)) {
                                            (csrf_field(&ctx.csrf))
                                            label.skip for=(format!("role-{}", m.id)) { "Role of " (m.email) }
                                            select id=(format!("role-{}", m.id)) name="role" {
                                                @for role in ROLES {
                                                    option value=(role.as_str()) selected[role == m.role] { (role.as_str()) }
                                                }
                                            }
                                            button.secondary type="submit" { "Change" span.skip { " role of " (m.email) } }
                                        }
                                    } @else {
                                        (m.role.as_str())
                                    }
                                }
                                td { (time(m.added_at)) }
                                @if manage {
                                    td {
                                        @if removable(m) {
                                            a href=(format!("/members/{}/remove", m.id)) {
                                                @if Some(m.id.as_str()) == me { "Leave" span.skip { " the organization" } }
                                                @else { "Remove" span.skip { " " (m.email) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(invites) = &invites {
                (invites_section(ctx, invites))
            } @else if let Some(note) = not_allowed(ctx, Permission::ManageMembers) {
                (note)
            }
        },
    ))
}

/// The invites table (withdraw what is not yet accepted) and the form for a new one.
fn invites_section(ctx: &Ctx, invites: &InviteList) -> Markup {
    html! {
        h2 { "Invites" }
        @if invites.data.is_empty() { p.muted { "No invites yet." } } @else {
            div.table-wrap {
                table #invites {
                    thead { tr {
                        th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Status" } th scope="col" { "Expires" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for i in &invites.data {
                            tr {
                                td { (i.email) } td { (i.role.as_str()) } td { (i.status) } td { (time(i.expires_at)) }
                                td {
                                    @if i.accepted_at.is_none() {
                                        form.inline method="post" action=(format!("/members/invites/{}/withdraw", i.id)) {
                                            (csrf_field(&ctx.csrf))
                                            button.secondary type="submit" { "Withdraw" span.skip { " the invite for " (i.email) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Invite a member" }
        form.stack method="post" action="/members/invites" {
            (csrf_field(&ctx.csrf))
            div { label for="invite-email" { "Email" } input #invite-email type="email" name="email" required maxlength="254"; }
            div {
                label for="invite-role" { "Role" }
                select #invite-role name="role" {
                    @for role in ROLES {
                        option value=(role.as_str()) selected[role == Role::Developer] { (role.as_str()) }
                    }
                }
            }
            div { button type="submit" { "Create invite" } }
        }
    }
}

pub async fn members(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(
        StatusCode::OK,
        members_page(&state, &ctx, &req, None).await?,
    ))
}

pub async fn change_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<UserId>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    ctx.principal
        .require_organization(Permission::ManageMembers)?;
    let role = Role::parse(form.get("role").unwrap_or_default()).ok_or_else(|| {
        ApiError::invalid(
            "role",
            "'role' must be owner, admin, developer, billing or viewer.",
        )
    })?;
    users::set_role(&state, &ctx.principal, &path, role).await?;
    Ok(see_other("/members"))
}

pub async fn invite(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let role = Role::parse(form.get("role").unwrap_or_default()).ok_or_else(|| {
        ApiError::invalid(
            "role",
            "'role' must be owner, admin, developer, billing or viewer.",
        )
    })?;
    let created = invites::create(
        &state,
        &ctx.principal,
        InviteCreate {
            email: form.text("email"),
            role,
        },
    )
    .await?;
    Ok(page(
        StatusCode::OK,
        members_page(&state, &ctx, &req, Some(created)).await?,
    ))
}

pub async fn confirm_remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<UserId>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    ctx.principal
        .require_organization(Permission::ManageMembers)?;
    let member = state.store.member(&ctx.principal.tenant_id, &path).await?;
    let yourself = ctx.principal.user_id.as_deref() == Some(member.user_id.as_str());
    let (title, button) = if yourself {
        ("Leave the organization", "Leave")
    } else {
        ("Remove member", "Remove member")
    };
    Ok(page(
        StatusCode::OK,
        layout(
            &ctx,
            Section::Members,
            title,
            html! {
                @if yourself {
                    p { "Leave " strong { (ctx.organization) } "? Your console sessions in it end at once; only a new invite lets you back in." }
                } @else {
                    p { "Remove " strong { (member.email) } " (" (member.role.as_str()) ") from " strong { (ctx.organization) } "? Their sessions in it end at once; only a new invite lets them back in." }
                }
                form method="post" action=(format!("/members/{}/remove", member.user_id)) {
                    (csrf_field(&ctx.csrf))
                    button.danger type="submit" { (button) }
                    " "
                    a.button.secondary href="/members" { "Cancel" }
                }
            },
        ),
    ))
}

pub async fn remove_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<UserId>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let removed = users::remove(&state, &ctx.principal, &path).await?;
    // Leaving ends this session too: sign in again (to another organization).
    if ctx.principal.user_id.as_deref() == Some(removed.user_id.as_str()) {
        return Ok(see_other("/signin"));
    }
    Ok(see_other("/members"))
}

pub async fn withdraw_invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    invites::withdraw(&state, &ctx.principal, &path).await?;
    Ok(see_other("/members"))
}
