//! Payments through Stripe: prepaid top-ups (Checkout Sessions), the signed webhook that
//! credits them and records invoice payments, and the operator's plan changes
//! (`billing::stripe`, `billing::webhook`, `store::stripe`).

use crate::store::TenantId;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{JsonBody, QueryArgs};
use super::idempotency;
use super::list::{list_of, HasId, ListQuery};
use crate::auth::{Permission, Principal};
use crate::billing::operator::Operator;
use crate::billing::webhook;
use crate::error::{ApiError, ErrorBody};
use crate::metering::money::Money;
use crate::server::AppState;
use crate::store::ms_to_secs;
use crate::store::prices::CURRENCY;
use crate::store::stripe::{Applied, TopUp};
use crate::store::tenants::Plan;

/// The longest redirect URL accepted.
const MAX_URL_CHARS: usize = 2000;
/// The largest webhook body read (Stripe's events are far smaller).
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// A prepaid top-up: a Stripe Checkout Session; the credit is added when Stripe reports the
/// payment (webhook), never before.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopUpObject {
    pub id: String,
    /// Always `billing.top_up`.
    pub object: &'static str,
    /// Micro-USD (whole cents).
    pub amount_micros: i64,
    /// Always `usd`.
    pub currency: String,
    /// `creating`, `open` (waiting for the payment), `completed` (credited), `expired` or
    /// `failed` (the payment provider refused to open the session).
    pub status: &'static str,
    /// Where to pay (Stripe Checkout), while `open`.
    pub checkout_url: Option<String>,
    /// The Checkout Session's id.
    pub checkout_session_id: Option<String>,
    /// The ledger entry that credited it, once completed.
    pub ledger_entry_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, once completed.
    pub completed_at: Option<i64>,
}

impl From<TopUp> for TopUpObject {
    fn from(t: TopUp) -> Self {
        TopUpObject {
            object: "billing.top_up",
            amount_micros: t.amount.micros(),
            currency: t.currency,
            status: t.status.as_str(),
            checkout_url: t
                .checkout_url
                .filter(|_| t.status == crate::store::stripe::TopUpStatus::Open),
            checkout_session_id: t.checkout_session_id,
            ledger_entry_id: t.ledger_entry_id,
            created_at: ms_to_secs(t.created_ms),
            completed_at: t.completed_ms.map(ms_to_secs),
            id: t.id,
        }
    }
}

impl HasId for TopUpObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(TopUpList, TopUpObject);

/// Buy credits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpCreate {
    /// Micro-USD, whole cents, within the server's bounds (by default $5 to $10,000).
    pub amount_micros: i64,
    /// Where Stripe sends the payer after paying; default the console's billing page.
    pub success_url: Option<String>,
    /// Where Stripe sends the payer who cancels; default the console's billing page.
    pub cancel_url: Option<String>,
}

fn redirect_url(given: Option<String>, param: &str, default: String) -> Result<String, ApiError> {
    let Some(url) = given else {
        return Ok(default);
    };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= MAX_URL_CHARS
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url)
    } else {
        Err(ApiError::invalid(
            param,
            format!("'{param}' must be an http(s) URL of at most {MAX_URL_CHARS} characters."),
        ))
    }
}

/// Opens a Stripe Checkout Session for a top-up: shared by this API and the console.
pub async fn open_top_up(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    body: TopUpCreate,
) -> Result<TopUp, ApiError> {
    principal.require_organization(Permission::ManageBilling)?;
    let stripe = state.stripe.as_ref().ok_or_else(|| {
        ApiError::Conflict(
            "Payments are not configured on this server: credits are added by an operator."
                .to_owned(),
        )
    })?;
    let bounds = stripe.config();
    if body.amount_micros % 10_000 != 0
        || body.amount_micros < bounds.min_top_up_micros
        || body.amount_micros > bounds.max_top_up_micros
    {
        return Err(ApiError::invalid(
            "amount_micros",
            format!(
                "'amount_micros' must be whole cents from {} to {}.",
                Money::from_micros(bounds.min_top_up_micros),
                Money::from_micros(bounds.max_top_up_micros)
            ),
        ));
    }
    let billing_page = {
        let info = req.connection_info();
        format!("{}://{}/billing", info.scheme(), info.host())
    };
    let success_url = redirect_url(
        body.success_url,
        "success_url",
        format!("{billing_page}?top_up=success"),
    )?;
    let cancel_url = redirect_url(
        body.cancel_url,
        "cancel_url",
        format!("{billing_page}?top_up=cancelled"),
    )?;
    let tenant = state.store.tenant_billing(&principal.tenant_id).await?;
    if tenant.plan == Plan::Enterprise {
        return Err(ApiError::Conflict(
            "This organization is postpaid (enterprise): its usage is invoiced, there is no \
             balance to top up."
                .to_owned(),
        ));
    }
    let customer = stripe
        .ensure_customer(&state.store, &principal.tenant_id)
        .await?;
    let (actor_type, actor_id) = principal.actor();
    let top_up = state
        .store
        .create_top_up(
            &principal.tenant_id,
            Money::from_micros(body.amount_micros),
            CURRENCY,
            &format!("{actor_type}:{actor_id}"),
        )
        .await?;
    let session = stripe
        .checkout_session(&customer, &top_up, &success_url, &cancel_url)
        .await;
    let top_up = state
        .store
        .set_top_up_session(
            &principal.tenant_id,
            &top_up.id,
            session
                .as_ref()
                .ok()
                .map(|s| (s.id.as_str(), s.url.as_str())),
        )
        .await?;
    session?;
    super::audit(
        state,
        principal,
        "billing.top_up_created",
        "top_up",
        &top_up.id,
    )
    .await?;
    Ok(top_up)
}

/// Buy credits: opens a Stripe Checkout Session for the amount and returns where to pay. The
/// credits are added when Stripe reports the payment.
#[utoipa::path(post, path = "/v1/billing/top_ups", tag = "Billing",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)")),
    request_body = TopUpCreate,
    responses((status = 201, body = TopUpObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "The payment provider could not be reached (`payment_provider_unavailable`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_top_up(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: JsonBody<TopUpCreate>,
) -> Result<HttpResponse, ApiError> {
    // Permission before the body is read (a caller who may not pay learns nothing else).
    principal.require_organization(Permission::ManageBilling)?;
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        let body = body.parse()?;
        let top_up = open_top_up(&state, &principal, &req, body).await?;
        Ok::<HttpResponse, ApiError>(HttpResponse::Created().json(TopUpObject::from(top_up)))
    })
    .await
}

/// The organization's top-ups, newest first.
#[utoipa::path(get, path = "/v1/billing/top_ups", tag = "Billing",
    params(ListQuery),
    responses((status = 200, body = TopUpList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_top_ups(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadUsage)?;
    let page = query.page()?;
    let top_ups = state
        .store
        .top_ups_page(&principal.tenant_id, &page)
        .await?;
    Ok(HttpResponse::Ok().json(TopUpList::from(top_ups.map(TopUpObject::from))))
}

/// One of the organization's top-ups.
#[utoipa::path(get, path = "/v1/billing/top_ups/{top_up_id}", tag = "Billing",
    params(("top_up_id" = String, Path)),
    responses((status = 200, body = TopUpObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_top_up(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadUsage)?;
    let top_up = state.store.top_up(&principal.tenant_id, &path).await?;
    Ok(HttpResponse::Ok().json(TopUpObject::from(top_up)))
}

/// What the webhook did with an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// Always true (a refused delivery gets an error).
    pub received: bool,
    /// The event's id.
    pub id: String,
    /// `applied`, or `duplicate` when the event was applied before (nothing changed).
    pub status: &'static str,
    /// What applying it did.
    pub outcome: Option<String>,
}

/// Stripe's webhook. Authenticated by the `Stripe-Signature` header (HMAC-SHA256 with the
/// endpoint's secret, 300 s tolerance), not by a bearer credential; every event is applied
/// once, however often Stripe delivers it.
#[utoipa::path(post, path = "/v1/billing/stripe/webhook", tag = "Billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ErrorBody),
        (status = 503, description = "No webhook secret is configured", body = ErrorBody)))]
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let secrets = &state.config.billing.stripe.webhook_secrets;
    if secrets.is_empty() {
        return Err(ApiError::Unavailable {
            message: "Stripe webhooks are not configured on this server.".to_owned(),
            code: crate::error::Code::WebhooksNotConfigured,
            retry_after: None,
        });
    }
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_WEBHOOK_BYTES,
        });
    }
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now_secs = crate::store::now_ms() / 1000;
    if let Err(e) = webhook::verify(signature, &body, secrets, now_secs) {
        state.metrics.inc(
            "starfire_stripe_webhooks_total",
            "Stripe webhook deliveries, by result.",
            &[("result", "refused")],
            1,
        );
        tracing::warn!(
            reason = e.message(),
            "a Stripe webhook delivery was refused"
        );
        return Err(ApiError::BadRequest {
            message: e.message().to_owned(),
            param: Some("Stripe-Signature".to_owned()),
        });
    }
    let event = webhook::parse(&body).map_err(|message| ApiError::BadRequest {
        message,
        param: None,
    })?;
    let applied = state
        .store
        .apply_stripe_event(&event.record(), &event.action)
        .await?;
    let (status, outcome) = match applied {
        Applied::Applied { outcome, tenant_id } => {
            tracing::info!(event = %event.id, kind = %event.kind, tenant = ?tenant_id, %outcome, "Stripe event applied");
            ("applied", Some(outcome))
        }
        Applied::Redelivered => ("duplicate", None),
    };
    state.metrics.inc(
        "starfire_stripe_webhooks_total",
        "Stripe webhook deliveries, by result.",
        &[("result", status)],
        1,
    );
    Ok(HttpResponse::Ok().json(WebhookReceipt {
        received: true,
        id: event.id,
        status,
        outcome,
    }))
}

/// A plan change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    /// `free`, `pay_as_you_go` or `enterprise`.
    #[schema(value_type = Plan)]
    pub plan: String,
}

/// An organization's plan and payment standing.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationBilling {
    /// The organization's id.
    pub id: String,
    /// Always `billing.organization`.
    pub object: &'static str,
    pub plan: Plan,
    /// The plan before this change.
    pub previous_plan: Plan,
    /// `ok`, or `past_due` after a failed invoice payment.
    pub billing_status: &'static str,
    /// The Stripe customer, when there is one.
    pub stripe_customer_id: Option<String>,
}

/// Change an organization's plan (operator only). Becoming enterprise (postpaid) needs an empty
/// prepaid balance and creates its Stripe customer when Stripe is configured; leaving
/// enterprise opens an empty prepaid account.
#[utoipa::path(post, path = "/v1/billing/admin/organizations/{organization_id}/plan", tag = "Billing administration",
    params(("organization_id" = String, Path)),
    request_body = PlanChange,
    responses((status = 200, body = OrganizationBilling), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Stripe could not create the organization's customer (becoming enterprise with Stripe configured); nothing changed")),
    security(("operator" = [])))]
pub async fn change_plan(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
    path: web::Path<TenantId>,
    body: JsonBody<PlanChange>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let plan = Plan::parse(&body.plan).ok_or_else(|| {
        ApiError::invalid(
            "plan",
            "'plan' must be 'free', 'pay_as_you_go' or 'enterprise'.",
        )
    })?;
    let previous_plan = state.store.change_plan(&path, plan).await?;
    if plan == Plan::Enterprise {
        if let Some(stripe) = &state.stripe {
            stripe.ensure_customer(&state.store, &path).await?;
        }
    }
    super::billing::audit_operator(
        &state,
        &operator,
        &req,
        &path,
        "billing.plan_changed",
        ("organization", &path),
    )
    .await?;
    let tenant = state.store.tenant_billing(&path).await?;
    Ok(HttpResponse::Ok().json(OrganizationBilling {
        id: tenant.tenant_id.into_string(),
        object: "billing.organization",
        plan: tenant.plan,
        previous_plan,
        billing_status: tenant.status.as_str(),
        stripe_customer_id: tenant.stripe_customer_id,
    }))
}
