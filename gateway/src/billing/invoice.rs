//! Invoices: the finalize routine (each calendar month, once it is over and the orphan grace
//! has passed, every tenant with billed requests in it gets its invoice stored, never to change
//! again) and the printable HTML page.

use std::time::Duration;

use maud::{html, Markup, DOCTYPE};

use super::config::BillingConfig;
use super::period::Period;
use crate::metering::money::Money;
use crate::store::invoices::Invoice;
use crate::store::{Store, StoreResult};

/// How many past months the routine looks at (it catches up after a gateway was down).
const CATCH_UP_MONTHS: usize = 3;

/// Finalizes every invoice that is due at `now_ms`: the months that ended at least
/// `invoice_grace_secs` ago (the last three), for every tenant with billed requests in them and
/// no invoice yet. Returns the invoices it stored. Safe to run on every replica at once.
pub async fn finalize_due(
    store: &Store,
    config: &BillingConfig,
    now_ms: i64,
) -> StoreResult<Vec<Invoice>> {
    let grace_ms = config.invoice_grace_secs as i64 * 1000;
    let mut period = Period::containing(now_ms - grace_ms).previous();
    let mut stored = Vec::new();
    for _ in 0..CATCH_UP_MONTHS {
        let (start, end) = (period.start_ms(), period.end_ms());
        for tenant in store.tenants_to_invoice(start, end).await? {
            stored.push(store.finalize_invoice(&tenant, start, end).await?);
        }
        period = period.previous();
    }
    Ok(stored)
}

/// Runs forever: finalizes due invoices every ten minutes. `serve` spawns it.
pub async fn run_background(store: Store, config: BillingConfig) {
    loop {
        match finalize_due(&store, &config, crate::store::now_ms()).await {
            Ok(stored) if !stored.is_empty() => {
                tracing::info!(count = stored.len(), "finalized invoices")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "finalizing invoices failed"),
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let p = Period::containing(ms);
    let day = days - p.start_ms().div_euclid(86_400_000) + 1;
    format!("{}-{:02}", p.label(), day)
}

fn per_million(micros: i64) -> String {
    format!("{} / 1M", Money::from_micros(micros))
}

/// The invoice as a self-contained printable HTML page (no scripts, no outside resources).
pub fn render_html(invoice: &Invoice, organization: &str) -> String {
    let period = Period::containing(invoice.period_start_ms);
    let title = format!("Starfire invoice {} — {}", period.label(), organization);
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (STYLE) }
            }
            body {
                h1 { "Invoice" }
                table.meta {
                    tr { th { "Organization" } td { (organization) " (" (invoice.tenant_id) ")" } }
                    tr { th { "Invoice" } td { (invoice.id.as_deref().unwrap_or("draft")) } }
                    tr { th { "Status" } td { (invoice.status.as_str()) } }
                    tr { th { "Period" } td { (date(invoice.period_start_ms)) " to " (date(invoice.period_end_ms - 1)) " (UTC)" } }
                    tr { th { "Plan" } td { (invoice.plan) } }
                    tr { th { "Currency" } td { (invoice.currency.to_uppercase()) } }
                }
                table.lines {
                    thead { tr {
                        th { "Model" } th { "Requests" }
                        th { "Input tokens" } th { "Input price" }
                        th { "Cached input tokens" } th { "Cached price" }
                        th { "Output tokens" } th { "Output price" }
                        th { "Amount" }
                    } }
                    tbody {
                        @for line in &invoice.lines {
                            @if let Some(description) = &line.description {
                                tr {
                                    td colspan="8" { (description) }
                                    td.n { (line.amount) }
                                }
                            } @else {
                            tr {
                                td { (line.model) }
                                td.n { (line.requests) }
                                td.n { (line.input_tokens) }
                                td.n { (line.prices.map(|p| per_million(p.input_micros_per_million)).unwrap_or_default()) }
                                td.n { (line.cached_tokens) }
                                td.n { (line.prices.map(|p| per_million(p.cached_input_micros_per_million)).unwrap_or_default()) }
                                td.n { (line.output_tokens) }
                                td.n { (line.prices.map(|p| per_million(p.output_micros_per_million)).unwrap_or_default()) }
                                td.n { (line.amount) }
                            }
                            }
                        }
                        @if invoice.lines.is_empty() {
                            tr { td colspan="9" { "No billed usage in this period." } }
                        }
                    }
                    tfoot {
                        tr { th colspan="8" { "Subtotal" } td.n { (invoice.subtotal) } }
                        tr { th colspan="8" { "Prepaid credits applied" } td.n { (Money::from_micros(-invoice.credits_applied.micros())) } }
                        tr.total { th colspan="8" { "Amount due" } td.n { (invoice.amount_due) } }
                    }
                }
                p.note { "Each request is priced at the price in effect when it started, rounded up to the micro-dollar; amounts are the sums of those costs." }
            }
        }
    };
    page.into_string()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#111}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{padding:.3em .6em;text-align:left;border-bottom:1px solid #ddd}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
table.lines{width:100%}tfoot th{text-align:right}tr.total{font-weight:bold}\
.note{color:#555;font-size:.9em}\
@media print{body{margin:0}a{color:inherit}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::money::Prices;
    use crate::store::invoices::{InvoiceLine, InvoiceStatus};

    #[test]
    fn the_page_shows_lines_and_totals_and_escapes_names() {
        let start = Period {
            year: 2026,
            month: 11,
        }
        .start_ms();
        let invoice = Invoice {
            id: Some("inv_1".into()),
            tenant_id: "org_1".into(),
            status: InvoiceStatus::Finalized,
            period_start_ms: start,
            period_end_ms: Period {
                year: 2026,
                month: 12,
            }
            .start_ms(),
            plan: "enterprise".into(),
            currency: "usd".into(),
            lines: vec![InvoiceLine {
                model: "m<1>".into(),
                price_id: Some("price_1".into()),
                requests: 3,
                input_tokens: 10,
                cached_tokens: 0,
                output_tokens: 20,
                prices: Some(Prices::DEFAULT),
                amount: Money::from_micros(1_500_000),
                description: None,
            }],
            subtotal: Money::from_micros(1_500_000),
            credits_applied: Money::ZERO,
            amount_due: Money::from_micros(1_500_000),
            created_ms: start,
        };
        let page = render_html(&invoice, "Acme <script>");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("m&lt;1&gt;"));
        assert!(page.contains("Acme &lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("$1.500000"));
        assert!(page.contains("$0.050000 / 1M"));
        assert!(page.contains("2026-11-01 to 2026-11-30"));
    }
}
