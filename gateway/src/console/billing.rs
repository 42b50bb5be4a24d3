//! The billing page: the organization's prepaid balance, what requests in flight hold, the
//! free-plan grant and the credit ledger, newest first (`store::credits`, the ledger that is
//! the source of truth), and the payments part (`payments`: Stripe Checkout top-ups, a
//! postpaid organization's standing).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::pages::{time, Ctx, PageResult, Section};
use super::{html as page, see_other, PageError};
use crate::auth::Permission;
use crate::metering::money::Money;
use crate::server::AppState;
use crate::store::ms_to_secs;

/// Ledger entries shown (newest first); the API returns them all.
const LEDGER_ROWS: usize = 50;

async fn billing_page(
    state: &AppState,
    ctx: &Ctx,
    opened: Option<&str>,
) -> Result<Markup, PageError> {
    let payments = super::payments::payments_markup(state, ctx, opened).await?;
    ctx.principal.require_organization(Permission::ReadUsage)?;
    let tenant = &ctx.principal.tenant_id;
    let account = state.store.credit_balance(tenant).await?;
    let ledger = match account {
        Some(_) => state.store.credit_ledger(tenant).await?,
        None => Vec::new(),
    };
    let granted = ledger
        .iter()
        .filter(|e| e.kind == "grant")
        .fold(Money::ZERO, |acc, e| acc.saturating_add(e.amount));
    let plan_grant = state.config.metering.free_grant;
    Ok(super::pages::layout(
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
            h2 { "Ledger" }
            p #ledger-count {
                (ledger.len()) @if ledger.len() == 1 { " entry" } @else { " entries" }
                @if ledger.len() > LEDGER_ROWS { " (the newest " (LEDGER_ROWS) " are shown)" }
            }
            div.table-wrap {
                table #ledger {
                    thead { tr { th scope="col" { "Date" } th scope="col" { "Kind" } th scope="col" { "Amount" } th scope="col" { "Request" } } }
                    tbody {
                        @for e in ledger.iter().rev().take(LEDGER_ROWS) {
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
        },
    ))
}

pub async fn billing(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    // `?top_up=<id>`: the top-up the form just opened (its payment link is shown).
    let opened = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "top_up")
        .map(|(_, v)| v.into_owned());
    Ok(page(
        StatusCode::OK,
        billing_page(&state, &ctx, opened.as_deref()).await?,
    ))
}
