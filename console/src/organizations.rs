//! The organization switcher: a user who belongs to several organizations moves the console to
//! another one. The session is bound to one organization (its tokens carry it), so switching
//! starts a session in the chosen one, after checking the membership, and ends the current one.

use actix_web::{web, HttpRequest};

use super::layout::{Ctx, Form, PageResult};
use super::session;
use super::signin::signed_in_response;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::audit::AuditEvent;

pub async fn switch(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let wanted = form.text("organization");
    let (user_id, session_id) = match (&ctx.principal.user_id, &ctx.principal.session_id) {
        (Some(user), Some(session)) => (user.clone(), session.clone()),
        _ => {
            return Err(ApiError::Forbidden("Switching needs a console session.".to_owned()).into())
        }
    };
    // The memberships as of now (Ctx read them in this request), never the form's word.
    let tenant = ctx
        .organizations
        .iter()
        .map(|(tenant, _)| tenant)
        .find(|tenant| tenant.id == wanted)
        .cloned()
        .ok_or_else(|| ApiError::not_found("organization", &wanted))?;
    let user = state.store.user(&user_id).await?;
    let token = session::start(&state, &user, &tenant).await?;
    state.store.revoke_session(&session_id).await?;
    state
        .store
        .record_audit(AuditEvent {
            tenant_id: &tenant.id,
            action: "login.succeeded",
            actor_type: "user",
            actor_id: &user_id,
            target_type: "user",
            target_id: &user_id,
            ip: ctx.principal.request.ip.as_deref(),
            request_id: Some(&ctx.principal.request.request_id),
        })
        .await?;
    Ok(signed_in_response(&req, &token))
}
