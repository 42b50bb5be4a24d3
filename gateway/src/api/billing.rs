//! `/v1/billing/*`: an organization's balance, ledger, invoices and the price catalog; and
//! `/v1/billing/admin/*`, the platform operator's routes (prices, adjustments, refunds), which
//! no organization credential can call (`billing::operator`).

use crate::store::TenantId;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{JsonBody, QueryArgs};
use super::list::{list_of, HasId, ListQuery};
use crate::auth::{Permission, Principal, RequestContext};
use crate::billing::catalog::{self, MIN_NOTICE_MS};
use crate::billing::invoice::render_html;
use crate::billing::operator::Operator;
use crate::billing::period::Period;
use crate::error::{ApiError, ErrorBody};
use crate::metering::money::{Money, Prices};
use crate::server::AppState;
use crate::store::audit::AuditEvent;
use crate::store::credits::{CreditKind, LedgerEntry, NewCredit, Posted};
use crate::store::invoices::{Invoice, InvoiceLine};
use crate::store::prices::{CatalogPrice, CURRENCY};
use crate::store::tenants::Plan;
use crate::store::{ms_to_secs, now_ms, Page};

/// The largest price accepted: $1,000,000 per 1M tokens.
const MAX_PRICE_MICROS: i64 = 1_000_000_000_000;
/// The largest adjustment accepted either way: $1,000,000.
const MAX_ADJUSTMENT_MICROS: i64 = 1_000_000_000_000;
const MAX_REASON_CHARS: usize = 500;

/// An organization's prepaid balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceObject {
    /// Always `billing.balance`.
    pub object: &'static str,
    /// `free`, `pay_as_you_go` or `enterprise`.
    pub plan: Plan,
    /// `prepaid` (requests are paid from the balance), or `postpaid` (no prepaid account:
    /// usage is invoiced; amounts are 0).
    pub mode: &'static str,
    /// Always `usd`.
    pub currency: &'static str,
    /// The ledger's sum, micro-USD (1 USD = 1,000,000).
    pub balance_micros: i64,
    /// Held by requests in flight, micro-USD.
    pub reserved_micros: i64,
    /// What new requests can still reserve, micro-USD.
    pub available_micros: i64,
    /// `ok`, or `past_due` after a failed invoice payment (a postpaid organization that is
    /// past due is refused new requests until the invoice is paid).
    pub billing_status: &'static str,
    /// Whether credits can be bought here (`POST /v1/billing/top_ups`: Stripe is configured
    /// and the organization is prepaid).
    pub top_ups_available: bool,
}

/// One ledger entry and its cause.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryObject {
    pub id: String,
    /// Always `billing.ledger_entry`.
    pub object: &'static str,
    /// `grant`, `top_up`, `usage` (negative), `adjustment` or `refund`.
    pub kind: String,
    /// Micro-USD; negative for debits.
    pub amount_micros: i64,
    /// Always `usd`.
    pub currency: &'static str,
    /// The request a usage debit is for.
    pub request_id: Option<String>,
    /// The payment a top-up came from.
    pub payment_id: Option<String>,
    /// Who posted it: `system`, `stripe`, `operator:<name>`.
    pub actor: Option<String>,
    /// The entry a refund reverses.
    pub refund_of: Option<String>,
    /// The reason of an adjustment or refund; a description otherwise.
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<LedgerEntry> for LedgerEntryObject {
    fn from(e: LedgerEntry) -> Self {
        LedgerEntryObject {
            id: e.id,
            object: "billing.ledger_entry",
            kind: e.kind,
            amount_micros: e.amount.micros(),
            currency: CURRENCY,
            request_id: e.request_id,
            payment_id: e.payment_id,
            actor: e.actor,
            refund_of: e.refund_of,
            reason: e.note,
            created_at: ms_to_secs(e.created_ms),
        }
    }
}

impl HasId for LedgerEntryObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(LedgerEntryList, LedgerEntryObject);

/// One invoice line: a model's billed requests at one catalog price.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineObject {
    pub model: String,
    /// The catalog price (null for usage older than the catalog).
    pub price_id: Option<String>,
    pub requests: i64,
    /// Prompt tokens billed at the input price.
    pub input_tokens: i64,
    /// Prompt tokens served from the prefix cache, billed at the cached-input price.
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    /// Unit prices, micro-USD per 1M tokens.
    pub input_micros_per_million: Option<i64>,
    pub cached_input_micros_per_million: Option<i64>,
    pub output_micros_per_million: Option<i64>,
    /// The sum of the requests' costs (each rounded up to the micro-dollar), micro-USD.
    pub amount_micros: i64,
    /// What a line that is not tokens is (a private deployment's reserved capacity, `model`
    /// being the deployment's name); null for token lines.
    pub description: Option<String>,
}

impl From<InvoiceLine> for InvoiceLineObject {
    fn from(l: InvoiceLine) -> Self {
        InvoiceLineObject {
            model: l.model,
            price_id: l.price_id,
            requests: l.requests,
            input_tokens: l.input_tokens,
            cached_input_tokens: l.cached_tokens,
            output_tokens: l.output_tokens,
            input_micros_per_million: l.prices.map(|p| p.input_micros_per_million),
            cached_input_micros_per_million: l.prices.map(|p| p.cached_input_micros_per_million),
            output_micros_per_million: l.prices.map(|p| p.output_micros_per_million),
            amount_micros: l.amount.micros(),
            description: l.description,
        }
    }
}

/// A statement of one calendar month (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceObject {
    /// Null for a draft (the running statement of a period not finalized yet).
    pub id: Option<String>,
    /// Always `billing.invoice`.
    pub object: &'static str,
    /// `draft` or `finalized` (never changes again).
    pub status: &'static str,
    /// The month, `YYYY-MM`.
    pub period: String,
    /// Unix seconds, inclusive.
    pub period_start: i64,
    /// Unix seconds, exclusive.
    pub period_end: i64,
    pub plan: String,
    pub currency: String,
    pub lines: Vec<InvoiceLineObject>,
    /// The sum of the lines, micro-USD.
    pub subtotal_micros: i64,
    /// What prepaid credits paid of it, micro-USD.
    pub credits_applied_micros: i64,
    /// What is owed (postpaid usage), micro-USD.
    pub amount_due_micros: i64,
    /// Finalization time (drafts: now), Unix seconds.
    pub created_at: i64,
}

impl From<Invoice> for InvoiceObject {
    fn from(i: Invoice) -> Self {
        InvoiceObject {
            id: i.id,
            object: "billing.invoice",
            status: i.status.as_str(),
            period: Period::containing(i.period_start_ms).label(),
            period_start: ms_to_secs(i.period_start_ms),
            period_end: ms_to_secs(i.period_end_ms),
            plan: i.plan,
            currency: i.currency,
            lines: i.lines.into_iter().map(InvoiceLineObject::from).collect(),
            subtotal_micros: i.subtotal.micros(),
            credits_applied_micros: i.credits_applied.micros(),
            amount_due_micros: i.amount_due.micros(),
            created_at: ms_to_secs(i.created_ms),
        }
    }
}

impl HasId for InvoiceObject {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

list_of!(InvoiceList, InvoiceObject);

/// A catalog price.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceObject {
    pub id: String,
    /// Always `billing.price`.
    pub object: &'static str,
    pub model: String,
    pub currency: String,
    /// Micro-USD per 1M uncached prompt tokens.
    pub input_micros_per_million: i64,
    /// Micro-USD per 1M prompt tokens served from the prefix cache.
    pub cached_input_micros_per_million: i64,
    /// Micro-USD per 1M generated tokens.
    pub output_micros_per_million: i64,
    /// From when (Unix seconds) until the model's next price; 0 for the configured price.
    pub effective_at: i64,
    pub created_at: i64,
    /// `config`, or `operator:<name>`.
    pub created_by: String,
}

impl From<CatalogPrice> for PriceObject {
    fn from(p: CatalogPrice) -> Self {
        PriceObject {
            id: p.id,
            object: "billing.price",
            model: p.model,
            currency: p.currency,
            input_micros_per_million: p.prices.input_micros_per_million,
            cached_input_micros_per_million: p.prices.cached_input_micros_per_million,
            output_micros_per_million: p.prices.output_micros_per_million,
            effective_at: ms_to_secs(p.effective_ms),
            created_at: ms_to_secs(p.created_ms),
            created_by: p.created_by,
        }
    }
}

impl HasId for PriceObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(PriceList, PriceObject);

/// Organization-scoped billing reads need `ReadUsage` (owners, admins, billing and viewer
/// members, admin keys, keys with `usage.read` bound to no project).
fn reader(principal: &Principal) -> Result<(), ApiError> {
    principal.require_organization(Permission::ReadUsage)
}

/// The organization's prepaid balance.
#[utoipa::path(get, path = "/v1/billing/balance", tag = "Billing",
    responses((status = 200, body = BalanceObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_balance(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    reader(&principal)?;
    let tenant = state.store.tenant_billing(&principal.tenant_id).await?;
    let account = state.store.credit_balance(&principal.tenant_id).await?;
    Ok(HttpResponse::Ok().json(BalanceObject {
        billing_status: tenant.status.as_str(),
        top_ups_available: state.stripe.is_some() && tenant.plan != Plan::Enterprise,
        object: "billing.balance",
        plan: tenant.plan,
        mode: if account.is_some() {
            "prepaid"
        } else {
            "postpaid"
        },
        currency: CURRENCY,
        balance_micros: account.map_or(0, |a| a.balance.micros()),
        reserved_micros: account.map_or(0, |a| a.reserved.micros()),
        available_micros: account.map_or(0, |a| a.available().micros()),
    }))
}

/// The organization's ledger, newest first.
#[utoipa::path(get, path = "/v1/billing/ledger", tag = "Billing",
    params(ListQuery),
    responses((status = 200, body = LedgerEntryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_ledger(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    reader(&principal)?;
    let page = query.page()?;
    let entries = state
        .store
        .credit_ledger_page(&principal.tenant_id, &page)
        .await?;
    Ok(HttpResponse::Ok().json(LedgerEntryList::from(entries.map(LedgerEntryObject::from))))
}

/// The organization's finalized invoices, newest first.
#[utoipa::path(get, path = "/v1/billing/invoices", tag = "Billing",
    params(ListQuery),
    responses((status = 200, body = InvoiceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_invoices(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    reader(&principal)?;
    let page = query.page()?;
    let invoices = state
        .store
        .invoices_page(&principal.tenant_id, &page)
        .await?;
    Ok(HttpResponse::Ok().json(InvoiceList::from(invoices.map(InvoiceObject::from))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpcomingQuery {
    /// The month, `YYYY-MM` (UTC, 1970-01 to 9999-12); default the current one.
    #[param(pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$")]
    pub period: Option<String>,
}

/// The statement of a month: the finalized invoice when there is one, else the running draft
/// computed from the usage so far.
#[utoipa::path(get, path = "/v1/billing/invoices/upcoming", tag = "Billing",
    params(UpcomingQuery),
    responses((status = 200, body = InvoiceObject), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upcoming_invoice(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<UpcomingQuery>,
) -> Result<HttpResponse, ApiError> {
    reader(&principal)?;
    let period = match &query.period {
        Some(p) => Period::parse(p).ok_or_else(|| {
            ApiError::invalid(
                "period",
                "'period' must be a month as YYYY-MM (e.g. 2026-11).",
            )
        })?,
        None => Period::containing(now_ms()),
    };
    let invoice = statement(&state, &principal, period).await?;
    Ok(HttpResponse::Ok().json(InvoiceObject::from(invoice)))
}

/// The statement of `period`: the finalized invoice when there is one, else the running draft
/// (shared by the JSON API and the console).
pub async fn statement(
    state: &AppState,
    principal: &Principal,
    period: Period,
) -> Result<Invoice, ApiError> {
    reader(principal)?;
    let tenant = &principal.tenant_id;
    Ok(
        match state
            .store
            .invoice_for_period(tenant, period.start_ms())
            .await?
        {
            Some(finalized) => finalized,
            None => {
                state
                    .store
                    .draft_invoice(tenant, period.start_ms(), period.end_ms())
                    .await?
            }
        },
    )
}

/// One of the caller's organization's finalized invoices (shared by the JSON API and the
/// console); 404 for another organization's.
pub async fn invoice_of(
    state: &AppState,
    principal: &Principal,
    invoice_id: &str,
) -> Result<Invoice, ApiError> {
    reader(principal)?;
    state
        .store
        .invoice(&principal.tenant_id, invoice_id)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice", invoice_id))
}

/// One finalized invoice.
#[utoipa::path(get, path = "/v1/billing/invoices/{invoice_id}", tag = "Billing",
    params(("invoice_id" = String, Path)),
    responses((status = 200, body = InvoiceObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_invoice(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let invoice = invoice_of(&state, &principal, &path).await?;
    Ok(HttpResponse::Ok().json(InvoiceObject::from(invoice)))
}

/// One finalized invoice as a printable HTML page.
#[utoipa::path(get, path = "/v1/billing/invoices/{invoice_id}/html", tag = "Billing",
    params(("invoice_id" = String, Path)),
    responses((status = 200, description = "A self-contained printable page", content_type = "text/html", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_invoice_html(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let invoice = invoice_of(&state, &principal, &path).await?;
    let tenant = state.store.tenant(&principal.tenant_id).await?;
    Ok(invoice_page(&invoice, &tenant.name))
}

/// The printable page of a statement, with the headers it needs (its style is inline, nothing
/// else may load); the console serves the same page to signed-in members.
pub fn invoice_page(invoice: &Invoice, organization: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(render_html(invoice, organization))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PriceQuery {
    /// Only this model's prices.
    pub model: Option<String>,
}

/// The price catalog: every model's prices, past, current and scheduled, by model and
/// effective time. Any credential that may read usage (project keys with `usage.read` too).
#[utoipa::path(get, path = "/v1/billing/prices", tag = "Billing",
    params(PriceQuery),
    responses((status = 200, body = PriceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_prices(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<PriceQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::ReadUsage)?;
    catalog::seed_configured(&state.store, &state.config.metering).await?;
    let prices = state.store.prices(query.model.as_deref()).await?;
    Ok(HttpResponse::Ok().json(PriceList::from(Page {
        items: prices.into_iter().map(PriceObject::from).collect(),
        has_more: false,
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceCreate {
    /// The served model name (case-insensitive), 1 to 256 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub model: String,
    /// Micro-USD per 1M uncached prompt tokens (0 to 10^12).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub input_micros_per_million: i64,
    /// Micro-USD per 1M prompt tokens served from the prefix cache (0 to 10^12).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cached_input_micros_per_million: i64,
    /// Micro-USD per 1M generated tokens (0 to 10^12).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub output_micros_per_million: i64,
    /// Only `usd` (the ledger's currency; any case).
    #[schema(pattern = "^[Uu][Ss][Dd]$")]
    pub currency: Option<String>,
    /// When the price takes effect, Unix seconds; at least one second from now (a price
    /// never changes the past). Default: the next whole second.
    pub effective_at: Option<i64>,
}

fn price_field(field: &str, v: i64) -> Result<i64, ApiError> {
    if !(0..=MAX_PRICE_MICROS).contains(&v) {
        return Err(ApiError::invalid(
            field,
            format!("'{field}' must be between 0 and {MAX_PRICE_MICROS} micro-USD per 1M tokens."),
        ));
    }
    Ok(v)
}

fn reason_of(raw: &str) -> Result<String, ApiError> {
    super::validate::text("reason", raw, MAX_REASON_CHARS)
}

/// Add a price to the catalog (operator only). Requests that start from `effective_at` on
/// are billed at it; earlier ones keep theirs.
#[utoipa::path(post, path = "/v1/billing/admin/prices", tag = "Billing administration",
    request_body = PriceCreate,
    responses((status = 201, body = PriceObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn create_price(
    state: web::Data<AppState>,
    operator: Operator,
    body: JsonBody<PriceCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let model = &super::validate::text("model", &body.model, 256)?;
    if let Some(currency) = &body.currency {
        if !currency.eq_ignore_ascii_case(CURRENCY) {
            return Err(ApiError::invalid(
                "currency",
                "'currency' must be usd (the ledger's currency).",
            ));
        }
    }
    let prices = Prices {
        input_micros_per_million: price_field(
            "input_micros_per_million",
            body.input_micros_per_million,
        )?,
        cached_input_micros_per_million: price_field(
            "cached_input_micros_per_million",
            body.cached_input_micros_per_million,
        )?,
        output_micros_per_million: price_field(
            "output_micros_per_million",
            body.output_micros_per_million,
        )?,
    };
    let earliest_ms = now_ms() + MIN_NOTICE_MS;
    let effective_ms = match body.effective_at {
        Some(secs) => {
            let ms = secs.checked_mul(1000).filter(|ms| *ms >= earliest_ms);
            ms.ok_or_else(|| {
                ApiError::invalid(
                    "effective_at",
                    "'effective_at' must be at least one second in the future: a price \
                     change never rewrites the past.",
                )
            })?
        }
        None => (earliest_ms + 999).div_euclid(1000) * 1000,
    };
    // The model's earlier requests keep the configured price it had until now.
    state
        .store
        .seed_price(model, state.config.metering.price(model))
        .await?;
    let price = state
        .store
        .add_price(model, prices, effective_ms, &operator.actor())
        .await?;
    tracing::info!(operator = %operator.name, model = %price.model, price_id = %price.id, "price added");
    Ok(HttpResponse::Created().json(PriceObject::from(price)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentCreate {
    /// Micro-USD; positive credits the organization, negative debits it. Not zero; at most
    /// 1,000,000 USD either way.
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    pub amount_micros: i64,
    /// Why (1 to 500 characters, not blank, no control characters); kept on the ledger entry.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundCreate {
    /// The request whose usage debit is given back.
    pub request_id: String,
    /// Why (1 to 500 characters, not blank, no control characters); kept on the ledger entry.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub reason: String,
}

/// Records an operator's action in the organization's audit log.
pub(crate) async fn audit_operator(
    state: &AppState,
    operator: &Operator,
    req: &HttpRequest,
    tenant_id: &TenantId,
    action: &str,
    target: (&str, &str),
) -> Result<(), ApiError> {
    let context = RequestContext::of(req);
    state
        .store
        .record_audit(AuditEvent {
            tenant_id,
            action,
            actor_type: "operator",
            actor_id: &operator.name,
            target_type: target.0,
            target_id: target.1,
            ip: context.ip.as_deref(),
            request_id: Some(&context.request_id),
        })
        .await?;
    Ok(())
}

fn posted(result: Posted, what: &str) -> Result<LedgerEntry, ApiError> {
    match result {
        Posted::Posted { entry, .. } => Ok(entry),
        Posted::Duplicate => Err(ApiError::Conflict(format!("This {what} was made already."))),
        Posted::NoAccount => Err(ApiError::Conflict(
            "This organization is postpaid (no prepaid account): its usage is invoiced, there \
             is no balance to adjust."
                .to_owned(),
        )),
        Posted::Overdrawn { balance } => Err(ApiError::Conflict(format!(
            "This {what} would take the balance ({}) below what requests in flight hold ({}).",
            balance.balance, balance.reserved
        ))),
    }
}

/// Adjust an organization's credits (operator only), with a reason.
#[utoipa::path(post, path = "/v1/billing/admin/organizations/{organization_id}/adjustments", tag = "Billing administration",
    params(("organization_id" = String, Path)),
    request_body = AdjustmentCreate,
    responses((status = 201, body = LedgerEntryObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn create_adjustment(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
    path: web::Path<TenantId>,
    body: JsonBody<AdjustmentCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    if body.amount_micros == 0 || body.amount_micros.abs() > MAX_ADJUSTMENT_MICROS {
        return Err(ApiError::invalid(
            "amount_micros",
            format!(
                "'amount_micros' must be non-zero and at most {MAX_ADJUSTMENT_MICROS} either way."
            ),
        ));
    }
    let reason = reason_of(&body.reason)?;
    let tenant = state.store.tenant(&path).await?;
    let actor = operator.actor();
    let result = state
        .store
        .post_credit(&NewCredit {
            tenant_id: &tenant.id,
            kind: CreditKind::Adjustment,
            amount: Money::from_micros(body.amount_micros),
            note: Some(&reason),
            payment_id: None,
            actor: Some(&actor),
            refund_of: None,
            // Postpaid (enterprise) organizations have no balance to adjust.
            open_account: tenant.plan != Plan::Enterprise,
        })
        .await?;
    let entry = posted(result, "adjustment")?;
    audit_operator(
        &state,
        &operator,
        &req,
        &tenant.id,
        "billing.credits_adjusted",
        ("ledger_entry", &entry.id),
    )
    .await?;
    Ok(HttpResponse::Created().json(LedgerEntryObject::from(entry)))
}

/// Give back a request's usage debit (operator only), with a reason. A debit is refunded at
/// most once.
#[utoipa::path(post, path = "/v1/billing/admin/organizations/{organization_id}/refunds", tag = "Billing administration",
    params(("organization_id" = String, Path)),
    request_body = RefundCreate,
    responses((status = 201, body = LedgerEntryObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn create_refund(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
    path: web::Path<TenantId>,
    body: JsonBody<RefundCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let reason = reason_of(&body.reason)?;
    let tenant = state.store.tenant(&path).await?;
    let debit = state
        .store
        .usage_debit(&tenant.id, &body.request_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "No usage debit for request '{}' in this organization.",
                body.request_id
            ))
        })?;
    let actor = operator.actor();
    let result = state
        .store
        .post_credit(&NewCredit {
            tenant_id: &tenant.id,
            kind: CreditKind::Refund,
            amount: Money::from_micros(-debit.amount.micros()),
            note: Some(&reason),
            payment_id: None,
            actor: Some(&actor),
            refund_of: Some(&debit.id),
            open_account: false,
        })
        .await?;
    let entry = posted(result, "refund")?;
    audit_operator(
        &state,
        &operator,
        &req,
        &tenant.id,
        "billing.usage_refunded",
        ("ledger_entry", &entry.id),
    )
    .await?;
    Ok(HttpResponse::Created().json(LedgerEntryObject::from(entry)))
}
