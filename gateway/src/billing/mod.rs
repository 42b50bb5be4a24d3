//! Billing: what usage costs, who paid, and the statements. Starfire's own ledger
//! (`store::credits`) is the source of truth.
//!
//! - `catalog`: the one price lookup, a request priced at its model's catalog price effective
//!   at its start (`store::prices` holds the dated catalog, seeded from `[metering.prices]`).
//! - `period`: billing periods (calendar months, UTC).
//! - `invoice`: the finalize routine (a month's invoices stored once the month is over, never
//!   changed after; `store::invoices`) and the printable HTML page.
//! - `operator`: the platform operator's credential for prices, adjustments and refunds.
//! - `config`: the `[billing]` table (with `[billing.stripe]`).
//! - `stripe`: Stripe through async-stripe: customers, Checkout top-ups, meter events for
//!   postpaid usage (`store::stripe` keeps what Starfire knows of them).
//! - `webhook`: the signed webhook and what each Stripe event changes, exactly once.
//!
//! Usage debits are written per request: the transaction that finalizes a request's usage
//! event settles its reservation and appends one `usage` entry with its request id
//! (`store::usage::finalize_usage`), so every debit points at its request and the ledger
//! never lags behind usage. The routes are in `api::billing` and `api::payments`.
//!
//! Plans: `free` (the signup grant, the lowest limits), `pay_as_you_go` (prepaid credits; a
//! free organization that tops up becomes one) and `enterprise` (postpaid: no prepaid balance,
//! usage reported to Stripe as meter events and invoiced there; higher limits). An operator
//! changes a plan (`POST /v1/billing/admin/organizations/{id}/plan`).

pub mod catalog;
pub mod config;
pub mod invoice;
pub mod operator;
pub mod period;
pub mod stripe;
pub mod webhook;
