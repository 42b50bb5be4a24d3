//! The billing page: the organization's prepaid balance, what requests in flight hold, the
//! free-plan grant, its statements (the running month's draft and the finalized invoices, each
//! opening the billing module's printable page) and the credit ledger, newest first, a page at a
//! time (`store::credits`, the ledger that is the source of truth), and the payments part
//! (`payments`: Stripe Checkout top-ups, a postpaid organization's standing).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use store::TenantId;

use super::layout::{query_param, time, Ctx, PageResult, Section};
use super::{html as page, see_other, PageError};
use gateway::api::billing::{invoice_of, invoice_page, statement};
use gateway::auth::Permission;
use gateway::billing::period::Period;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::credits::LedgerEntry;
use store::invoices::Invoice;
use store::{ms_to_secs, now_ms, Page, PageRequest};

/// Ledger entries per page.
const LEDGER_ROWS: u32 = 50;
/// Finalized invoices listed (newest first); the API pages through all of them.
const INVOICE_ROWS: u32 = 24;

/// `Period::label` as a month name: `November 2026`.
fn month(period: Period) -> String {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = NAMES
        .get(period.month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("?");
    format!("{name} {}", period.year)
}

/// The running month's statement and the finalized invoices, each linking to its printable
/// page.
async fn invoices_section(state: &AppState, ctx: &Ctx) -> Result<Markup, PageError> {
    let current = Period::containing(now_ms());
    let upcoming = statement(state, &ctx.principal, current).await?;
    let invoices = state
        .store
        .invoices_page(
            &ctx.principal.tenant_id,
            &PageRequest {
                limit: INVOICE_ROWS,
                after: None,
            },
        )
        .await?;
    let href = |invoice: &Invoice| match &invoice.id {
        Some(id) => format!("/billing/invoices/{id}"),
        None => "/billing/invoices/upcoming".to_owned(),
    };
    Ok(html! {
        h2 { "Invoices" }
        section #upcoming-invoice aria-labelledby="upcoming-title" {
            h3 #upcoming-title { "This month (" (month(current)) ")" }
            dl.stats {
                dt { "Status" } dd #upcoming-status { (upcoming.status.as_str()) }
                dt { "Usage so far" } dd #upcoming-subtotal { (upcoming.subtotal) }
                dt { "Paid from credits" } dd #upcoming-credits { (upcoming.credits_applied) }
                dt { "Amount due" } dd #upcoming-due { (upcoming.amount_due) }
            }
            p { a href=(href(&upcoming)) { "Printable statement for " (month(current)) } }
        }
        p #invoice-count {
            (invoices.items.len()) @if invoices.items.len() == 1 { " finalized invoice" } @else { " finalized invoices" }
            @if invoices.has_more { " (the newest " (INVOICE_ROWS) " are shown; the API lists all)" }
        }
        @if !invoices.items.is_empty() {
            div.table-wrap {
                table #invoices {
                    thead { tr {
                        th scope="col" { "Period" } th scope="col" { "Subtotal" } th scope="col" { "Paid from credits" }
                        th scope="col" { "Amount due" } th scope="col" { "Finalized" } th scope="col" { "Invoice" }
                    } }
                    tbody {
                        @for invoice in &invoices.items {
                            @let period = month(Period::containing(invoice.period_start_ms));
                            tr {
                                td { (period) }
                                td { (invoice.subtotal) }
                                td { (invoice.credits_applied) }
                                td { (invoice.amount_due) }
                                td { (time(ms_to_secs(invoice.created_ms))) }
                                td { a href=(href(invoice)) { "View" span.skip { " the invoice for " (period) } } }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Which ledger page: `?after=<id>` (older than that entry) or `?before=<id>` (newer).
enum LedgerCursor {
    Newest,
    Older(String),
    Newer(String),
}

impl LedgerCursor {
    /// Reads and checks the query: at most one cursor, shaped like an id, naming one of the
    /// organization's entries (400 otherwise).
    async fn of(state: &AppState, ctx: &Ctx, req: &HttpRequest) -> Result<Self, PageError> {
        let (param, id) = match (query_param(req, "after"), query_param(req, "before")) {
            (None, None) => return Ok(LedgerCursor::Newest),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "Give either 'after' or 'before', not both.",
                    Some("after"),
                )
                .into())
            }
            (Some(after), None) => ("after", after),
            (None, Some(before)) => ("before", before),
        };
        let shaped = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !shaped
            || !state
                .store
                .has_ledger_entry(&ctx.principal.tenant_id, &id)
                .await?
        {
            return Err(ApiError::bad_request(
                format!("'{param}' must be the id of one of this organization's ledger entries."),
                Some(param),
            )
            .into());
        }
        Ok(if param == "after" {
            LedgerCursor::Older(id)
        } else {
            LedgerCursor::Newer(id)
        })
    }
}

/// One ledger page, newest first, and the links to the older and newer pages next to it.
struct LedgerPage {
    entries: Vec<LedgerEntry>,
    older: Option<String>,
    newer: Option<String>,
}

async fn ledger_page(
    state: &AppState,
    tenant: &TenantId,
    cursor: LedgerCursor,
) -> Result<LedgerPage, PageError> {
    let request = |after: Option<String>| PageRequest {
        limit: LEDGER_ROWS,
        after,
    };
    let older_than = |page: &Page<LedgerEntry>| {
        page.items
            .last()
            .map(|e| format!("/billing?after={}", e.id))
    };
    let newer_than = |page: &Page<LedgerEntry>| {
        page.items
            .first()
            .map(|e| format!("/billing?before={}", e.id))
    };
    Ok(match cursor {
        LedgerCursor::Newest => {
            let page = state
                .store
                .credit_ledger_page(tenant, &request(None))
                .await?;
            LedgerPage {
                older: older_than(&page).filter(|_| page.has_more),
                newer: None,
                entries: page.items,
            }
        }
        LedgerCursor::Older(after) => {
            let page = state
                .store
                .credit_ledger_page(tenant, &request(Some(after)))
                .await?;
            LedgerPage {
                older: older_than(&page).filter(|_| page.has_more),
                // The cursor's own entry is newer than this page.
                newer: newer_than(&page).or_else(|| Some("/billing".to_owned())),
                entries: page.items,
            }
        }
        LedgerCursor::Newer(before) => {
            let page = state
                .store
                .credit_ledger_page_newer(tenant, &request(Some(before)))
                .await?;
            LedgerPage {
                // The cursor's own entry is older than this page.
                older: older_than(&page),
                newer: newer_than(&page).filter(|_| page.has_more),
                entries: page.items,
            }
        }
    })
}

fn ledger_section(count: i64, ledger: &LedgerPage) -> Markup {
    html! {
        h2 { "Ledger" }
        p #ledger-count {
            (count) @if count == 1 { " entry" } @else { " entries" }
            @if ledger.older.is_some() || ledger.newer.is_some() {
                " (" (ledger.entries.len()) " on this page)"
            }
        }
        div.table-wrap {
            table #ledger {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Kind" } th scope="col" { "Amount" } th scope="col" { "Request" } } }
                tbody {
                    @for e in &ledger.entries {
                        tr {
                            td { (time(ms_to_secs(e.created_ms))) }
                            td { (e.kind.replace('_', " ")) }
                            td { (e.amount) }
                            td { @if let Some(r) = &e.request_id { code { (r) } } }
                        }
                    }
                }
            }
        }
        @if ledger.older.is_some() || ledger.newer.is_some() {
            nav.pager #ledger-pages aria-label="Ledger pages" {
                @if let Some(href) = &ledger.newer { a #ledger-newer rel="prev" href=(href) { "Newer entries" } }
                " "
                @if let Some(href) = &ledger.older { a #ledger-older rel="next" href=(href) { "Older entries" } }
            }
        }
    }
}

async fn billing_page(state: &AppState, ctx: &Ctx, req: &HttpRequest) -> Result<Markup, PageError> {
    ctx.principal.require_organization(Permission::ReadUsage)?;
    let tenant = &ctx.principal.tenant_id;
    let cursor = LedgerCursor::of(state, ctx, req).await?;
    let account = state.store.credit_balance(tenant).await?;
    let (count, granted) = state.store.credit_ledger_summary(tenant).await?;
    let ledger = match account {
        Some(_) => ledger_page(state, tenant, cursor).await?,
        None => LedgerPage {
            entries: Vec::new(),
            older: None,
            newer: None,
        },
    };
    let plan_grant = state.config.metering.free_grant;
    let invoices = invoices_section(state, ctx).await?;
    // `?top_up=<id>`: the top-up the form just opened (its payment link comes first).
    let opened = query_param(req, "top_up");
    let payments = super::payments::payments_markup(state, ctx, opened.as_deref()).await?;
    Ok(super::layout::layout(
        ctx,
        Section::Billing,
        "Billing",
        html! {
            @match account {
                Some(account) => {
                    dl.stats #balance {
                        dt { "Balance" } dd #balance-value { (account.balance) }
                        dt { "Held by requests in flight" } dd #reserved-value { (account.reserved) }
                        dt { "Available for new requests" } dd #available-value { (account.available()) }
                        dt { "Free-tier grant received" } dd #grant-value { (granted) }
                    }
                    p.muted { "Free-plan organizations start with " (plan_grant) " of credits. Every request's cost is debited from the balance when it ends." }
                }
                None => {
                    p #balance-value { "Postpaid: usage is invoiced at the end of each period." }
                }
            }
            (payments)
            (invoices)
            (ledger_section(count, &ledger))
        },
    ))
}

pub async fn billing(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(
        StatusCode::OK,
        billing_page(&state, &ctx, &req).await?,
    ))
}

/// The billing module's printable page of a statement, for a signed-in member who may read
/// billing (the `/v1` route takes API credentials only, never the console's cookie).
fn printable(invoice: &Invoice, organization: &str) -> HttpResponse {
    let mut res = invoice_page(invoice, organization);
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// `/billing/invoices/{id}`: a finalized invoice (404 for another organization's).
pub async fn invoice(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let invoice = invoice_of(&state, &ctx.principal, &path).await?;
    Ok(printable(&invoice, &ctx.organization))
}

/// `/billing/invoices/upcoming`: this month's statement so far (the draft, or the invoice once
/// finalized).
pub async fn upcoming_invoice(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let invoice = statement(&state, &ctx.principal, Period::containing(now_ms())).await?;
    Ok(printable(&invoice, &ctx.organization))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_names() {
        assert_eq!(
            month(Period {
                year: 2026,
                month: 11
            }),
            "November 2026"
        );
        assert_eq!(
            month(Period {
                year: 2027,
                month: 1
            }),
            "January 2027"
        );
    }
}
