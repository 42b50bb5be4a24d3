//! The billing page's payments: buying credits through Stripe Checkout when the server has
//! Stripe configured, the organization's recent top-ups, and a postpaid organization's
//! standing. The form posts here; the Checkout Session is opened by the same code as
//! `POST /v1/billing/top_ups`, and the page then links to Stripe (the console's CSP keeps form
//! posts on this origin, so the payer follows a link rather than a cross-origin redirect).

use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::layout::{csrf_field, time, Ctx, Form, PageResult};
use super::{see_other, PageError};
use gateway::api::payments::{open_top_up, TopUpCreate};
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::metering::money::Money;
use gateway::server::AppState;
use store::ms_to_secs;
use store::stripe::{BillingStatus, TopUpStatus};
use store::tenants::Plan;
use store::PageRequest;

/// Top-ups listed on the page.
const TOP_UP_ROWS: u32 = 10;

/// The payments part of the billing page; `opened` is the top-up just created (its payment
/// link is shown first).
pub(super) async fn payments_markup(
    state: &AppState,
    ctx: &Ctx,
    opened: Option<&str>,
) -> Result<Markup, PageError> {
    let tenant = &ctx.principal.tenant_id;
    let billing = state.store.tenant_billing(tenant).await?;
    if billing.plan == Plan::Enterprise {
        return Ok(html! {
            h2 { "Payments" }
            p #payments {
                "Postpaid: usage is invoiced at the end of each period"
                @if state.stripe.is_some() { " through Stripe" } "."
            }
            @if billing.status == BillingStatus::PastDue {
                p.error #billing-status role="alert" {
                    "The last invoice payment failed: new requests are refused until it is paid."
                }
            }
        });
    }
    let Some(stripe) = &state.stripe else {
        return Ok(html! {
            h2 { "Buy credits" }
            p.muted #payments { "No payment provider is configured on this server: credits are added by an operator." }
        });
    };
    let top_ups = state
        .store
        .top_ups_page(
            tenant,
            &PageRequest {
                limit: TOP_UP_ROWS,
                after: None,
            },
        )
        .await?
        .items;
    let opened = opened.and_then(|id| top_ups.iter().find(|t| t.id == id));
    let bounds = stripe.config();
    let dollars = |micros: i64| format!("{:.2}", micros as f64 / 1_000_000.0);
    Ok(html! {
        h2 { "Buy credits" }
        @if let Some(t) = opened {
            @if let (TopUpStatus::Open, Some(url)) = (t.status, &t.checkout_url) {
                p.notice #top-up-opened role="status" {
                    "Your top-up of " (t.amount) " is ready. "
                    a #pay-link href=(url) rel="noopener" { "Pay with Stripe" }
                    ". Credits are added as soon as Stripe confirms the payment."
                }
            }
        }
        @if ctx.can(Permission::ManageBilling) {
            form #top-up-form method="post" action="/billing/top_ups" {
                (csrf_field(&ctx.csrf))
                label for="top-up-amount" { "Amount (USD)" }
                input #top-up-amount type="number" name="amount" required
                    min=(dollars(bounds.min_top_up_micros)) max=(dollars(bounds.max_top_up_micros))
                    step="0.01" value=(dollars(bounds.min_top_up_micros.max(10_000_000).min(bounds.max_top_up_micros)));
                button type="submit" { "Continue to payment" }
            }
        } @else {
            p.muted { "Owners, admins and billing members can buy credits." }
        }
        @if !top_ups.is_empty() {
            h3 { "Recent top-ups" }
            div.table-wrap {
                table #top-ups {
                    thead { tr { th scope="col" { "Date" } th scope="col" { "Amount" } th scope="col" { "Status" } } }
                    tbody {
                        @for t in &top_ups {
                            tr {
                                td { (time(ms_to_secs(t.created_ms))) }
                                td { (t.amount) }
                                td {
                                    (t.status.as_str())
                                    @if let (TopUpStatus::Open, Some(url)) = (t.status, &t.checkout_url) {
                                        " · " a href=(url) rel="noopener" { "pay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Parses "12.34" (US dollars, at most two decimals) into micro-dollars.
fn parse_dollars(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, cents) = match text.split_once('.') {
        Some((w, c)) if !c.is_empty() && c.len() <= 2 && c.bytes().all(|b| b.is_ascii_digit()) => {
            (w, format!("{c:0<2}"))
        }
        Some(_) => return None,
        None => (text, "00".to_owned()),
    };
    if whole.is_empty() || whole.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = cents.parse().ok()?;
    Some(Money::from_micros(whole * 1_000_000 + cents * 10_000).micros())
}

/// `POST /billing/top_ups`: opens a Checkout Session and shows the page with its payment link.
pub async fn top_up(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let amount = parse_dollars(&form.text("amount")).ok_or_else(|| {
        PageError(ApiError::invalid(
            "amount",
            "'amount' must be a number of US dollars, like 25 or 25.50.",
        ))
    })?;
    let top_up = open_top_up(
        &state,
        &ctx.principal,
        &req,
        TopUpCreate {
            amount_micros: amount,
            success_url: None,
            cancel_url: None,
        },
    )
    .await?;
    Ok(see_other(&format!("/billing?top_up={}", top_up.id)))
}

#[cfg(test)]
mod tests {
    use super::parse_dollars;

    #[test]
    fn dollars_parse_to_micros() {
        assert_eq!(parse_dollars("25"), Some(25_000_000));
        assert_eq!(parse_dollars("25.5"), Some(25_500_000));
        assert_eq!(parse_dollars(" 0.07 "), Some(70_000));
        for bad in ["", "-1", "1.234", "1e3", "abc", "1.", ".5", "1234567890"] {
            assert_eq!(parse_dollars(bad), None, "{bad}");
        }
    }
}
