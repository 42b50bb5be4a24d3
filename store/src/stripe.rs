//! What Starfire keeps about Stripe: a tenant's customer and payment standing, prepaid top-ups
//! (Checkout Sessions), the Stripe events applied (each once, in the transaction that applies
//! it), Stripe invoices of postpaid tenants, and the meter-event outbox of postpaid usage.

use crate::ids::TenantId;
use sqlx::Row as _;

use super::credits::{post_credit_in, CreditKind, NewCredit, Posted};
use super::tenants::Plan;
use super::{created_ms, Page, PageRequest, Row, Store, StoreError, StoreResult};
use crate::money::Money;
use crate::secret::new_id;

/// Whether a tenant's last Stripe invoice was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingStatus {
    Ok,
    /// `invoice.payment_failed` and no `invoice.paid` since: a postpaid tenant is refused.
    PastDue,
}

impl BillingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingStatus::Ok => "ok",
            BillingStatus::PastDue => "past_due",
        }
    }
}

/// A tenant's plan and payment standing.
#[derive(Debug, Clone)]
pub struct TenantBilling {
    pub tenant_id: TenantId,
    pub name: String,
    pub plan: Plan,
    pub stripe_customer_id: Option<String>,
    pub status: BillingStatus,
}

/// What a top-up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUpStatus {
    /// Its Checkout Session is being created.
    Creating,
    /// Waiting for the payment.
    Open,
    /// Paid and credited.
    Completed,
    /// The session expired unpaid.
    Expired,
    /// Stripe refused to create the session.
    Failed,
}

impl TopUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TopUpStatus::Creating => "creating",
            TopUpStatus::Open => "open",
            TopUpStatus::Completed => "completed",
            TopUpStatus::Expired => "expired",
            TopUpStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> TopUpStatus {
        match s {
            "creating" => TopUpStatus::Creating,
            "open" => TopUpStatus::Open,
            "completed" => TopUpStatus::Completed,
            "expired" => TopUpStatus::Expired,
            _ => TopUpStatus::Failed,
        }
    }
}

/// A prepaid top-up through Stripe Checkout.
#[derive(Debug, Clone)]
pub struct TopUp {
    pub id: String,
    pub tenant_id: TenantId,
    pub amount: Money,
    pub currency: String,
    pub status: TopUpStatus,
    pub checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub created_by: String,
    pub created_ms: i64,
    pub completed_ms: Option<i64>,
    pub ledger_entry_id: Option<String>,
}

const TOP_UP_COLUMNS: &str = "id, tenant_id, amount_micros, currency, status, \
    checkout_session_id, checkout_url, created_by, created_ms, completed_ms, ledger_entry_id";

fn top_up_from_row(row: &Row) -> StoreResult<TopUp> {
    Ok(TopUp {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        amount: Money::from_micros(row.try_get("amount_micros")?),
        currency: row.try_get("currency")?,
        status: TopUpStatus::parse(&row.try_get::<String, _>("status")?),
        checkout_session_id: row.try_get("checkout_session_id")?,
        checkout_url: row.try_get("checkout_url")?,
        created_by: row.try_get("created_by")?,
        created_ms: row.try_get("created_ms")?,
        completed_ms: row.try_get("completed_ms")?,
        ledger_entry_id: row.try_get("ledger_entry_id")?,
    })
}

/// A Stripe event, as recorded.
#[derive(Debug, Clone)]
pub struct StripeEventRecord<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub created_ms: i64,
}

/// What an event asks the store to do.
#[derive(Debug, Clone)]
pub enum EventAction {
    /// A Checkout Session was paid: credit its top-up (once per session).
    CompleteTopUp {
        top_up_id: String,
        /// The tenant the session's metadata names (must be the top-up's).
        tenant_id: String,
        session_id: String,
        /// What Stripe collected, in the top-up's currency.
        amount: Money,
    },
    /// A Checkout Session expired unpaid.
    ExpireTopUp { session_id: String },
    /// A Stripe invoice of a postpaid tenant was paid, or its payment failed.
    Invoice {
        customer_id: String,
        invoice_id: String,
        paid: bool,
        status: String,
        amount_due_cents: i64,
        amount_paid_cents: i64,
        currency: String,
        hosted_url: Option<String>,
    },
    /// Nothing to change (an event type or object Starfire does not act on).
    Ignore(String),
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now; the outcome as recorded.
    Applied {
        tenant_id: Option<String>,
        outcome: String,
    },
    /// The event was applied before: nothing changed.
    Redelivered,
}

/// A meter event owed to Stripe.
#[derive(Debug, Clone)]
pub struct MeterRow {
    pub request_id: String,
    pub tenant_id: TenantId,
    pub customer_id: String,
    pub value: i64,
    pub event_ms: i64,
    pub attempts: i64,
}

impl Store {
    /// A tenant's plan, Stripe customer and payment standing.
    pub async fn tenant_billing(&self, tenant_id: &TenantId) -> StoreResult<TenantBilling> {
        let row = sqlx::query(
            "SELECT id, name, plan, stripe_customer_id, billing_status FROM tenants WHERE id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No organization '{tenant_id}'.")))?;
        let plan: String = row.try_get("plan")?;
        let status: String = row.try_get("billing_status")?;
        Ok(TenantBilling {
            tenant_id: row.try_get("id")?,
            name: row.try_get("name")?,
            plan: Plan::parse(&plan).unwrap_or(Plan::Free),
            stripe_customer_id: row.try_get("stripe_customer_id")?,
            status: if status == "past_due" {
                BillingStatus::PastDue
            } else {
                BillingStatus::Ok
            },
        })
    }

    /// Records the tenant's Stripe customer unless it has one; returns the one it has.
    pub async fn set_stripe_customer(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
    ) -> StoreResult<String> {
        sqlx::query(
            "UPDATE tenants SET stripe_customer_id = $1 WHERE id = $2 \
             AND stripe_customer_id IS NULL",
        )
        .bind(customer_id)
        .bind(tenant_id)
        .execute(self.pool())
        .await?;
        self.tenant_billing(tenant_id)
            .await?
            .stripe_customer_id
            .ok_or_else(|| StoreError::Conflict("the Stripe customer was not recorded".into()))
    }

    /// Changes a tenant's plan. Becoming enterprise (postpaid) closes the prepaid account, which
    /// must be empty and hold nothing; leaving enterprise opens an empty one. Returns the plan
    /// it had.
    pub async fn change_plan(&self, tenant_id: &TenantId, plan: Plan) -> StoreResult<Plan> {
        let now = created_ms();
        let mut tx = self.begin_write().await?;
        let before = sqlx::query("SELECT plan FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(before) = before else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!(
                "No organization '{tenant_id}'."
            )));
        };
        let before = Plan::parse(&before.try_get::<String, _>("plan")?).unwrap_or(Plan::Free);
        sqlx::query("UPDATE tenants SET plan = $1 WHERE id = $2")
            .bind(plan.as_str())
            .bind(tenant_id)
            .execute(&mut **tx)
            .await?;
        let account = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
        match (plan, account) {
            (Plan::Enterprise, Some(account)) => {
                // Conditional, so that a reservation made meanwhile keeps the account.
                let closed = sqlx::query(
                    "DELETE FROM credit_accounts WHERE tenant_id = $1 AND balance_micros = 0 \
                     AND reserved_micros = 0",
                )
                .bind(tenant_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if closed == 0 {
                    let balance: i64 = account.try_get("balance_micros")?;
                    let reserved: i64 = account.try_get("reserved_micros")?;
                    tx.rollback().await?;
                    return Err(StoreError::Conflict(format!(
                        "The organization's prepaid balance is {} with {} held by requests in \
                         flight: an enterprise (postpaid) organization has no prepaid balance, so \
                         refund or adjust it to zero first.",
                        Money::from_micros(balance),
                        Money::from_micros(reserved)
                    )));
                }
            }
            (Plan::Free | Plan::PayAsYouGo, None) => {
                sqlx::query(
                    "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, \
                     updated_ms) VALUES ($1, 0, 0, $2)",
                )
                .bind(tenant_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(before)
    }

    /// Records a new top-up (`creating`), before its Checkout Session is made.
    pub async fn create_top_up(
        &self,
        tenant_id: &TenantId,
        amount: Money,
        currency: &str,
        created_by: &str,
    ) -> StoreResult<TopUp> {
        let top_up = TopUp {
            id: new_id("topup"),
            tenant_id: tenant_id.to_owned(),
            amount,
            currency: currency.to_owned(),
            status: TopUpStatus::Creating,
            checkout_session_id: None,
            checkout_url: None,
            created_by: created_by.to_owned(),
            created_ms: created_ms(),
            completed_ms: None,
            ledger_entry_id: None,
        };
        sqlx::query(
            "INSERT INTO top_ups (id, tenant_id, amount_micros, currency, status, created_by, \
             created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&top_up.id)
        .bind(tenant_id)
        .bind(amount.micros())
        .bind(currency)
        .bind(top_up.status.as_str())
        .bind(created_by)
        .bind(top_up.created_ms)
        .execute(self.pool())
        .await?;
        Ok(top_up)
    }

    /// Records the Checkout Session made for a top-up (`open`), or that Stripe refused to make
    /// one (`failed`, no session). A top-up a webhook already completed stays completed.
    pub async fn set_top_up_session(
        &self,
        tenant_id: &TenantId,
        top_up_id: &str,
        session: Option<(&str, &str)>,
    ) -> StoreResult<TopUp> {
        let (status, session_id, url) = match session {
            Some((id, url)) => (TopUpStatus::Open, Some(id), Some(url)),
            None => (TopUpStatus::Failed, None, None),
        };
        sqlx::query(
            "UPDATE top_ups SET status = $1, checkout_session_id = $2, checkout_url = $3 \
             WHERE tenant_id = $4 AND id = $5 AND status = 'creating'",
        )
        .bind(status.as_str())
        .bind(session_id)
        .bind(url)
        .bind(tenant_id)
        .bind(top_up_id)
        .execute(self.pool())
        .await?;
        self.top_up(tenant_id, top_up_id).await
    }

    /// One of the tenant's top-ups.
    pub async fn top_up(&self, tenant_id: &TenantId, top_up_id: &str) -> StoreResult<TopUp> {
        let row = sqlx::query(&format!(
            "SELECT {TOP_UP_COLUMNS} FROM top_ups WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(top_up_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No top-up '{top_up_id}'.")))?;
        top_up_from_row(&row)
    }

    /// A page of the tenant's top-ups, newest first.
    pub async fn top_ups_page(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<TopUp>> {
        let listing = super::page::Listing {
            columns: TOP_UP_COLUMNS,
            table: "top_ups",
            filter: "",
            binds: &[],
            newest_first: true,
            from_row: top_up_from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Applies a Stripe event once: the event's id is recorded in the same transaction as what
    /// it changes, so a redelivery (or two replicas receiving it at once) changes nothing.
    pub async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord<'_>,
        action: &EventAction,
    ) -> StoreResult<Applied> {
        let now = created_ms();
        let mut tx = self.begin_write().await?;
        let fresh = sqlx::query(
            "INSERT INTO stripe_events (id, type, tenant_id, outcome, created_ms, received_ms) \
             VALUES ($1, $2, NULL, 'applying', $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id)
        .bind(event.kind)
        .bind(event.created_ms)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(Applied::Redelivered);
        }
        let (tenant_id, outcome) = match action {
            EventAction::CompleteTopUp {
                top_up_id,
                tenant_id,
                session_id,
                amount,
            } => complete_top_up(&mut tx, top_up_id, tenant_id, session_id, *amount, now).await?,
            EventAction::ExpireTopUp { session_id } => {
                let row = sqlx::query(
                    "UPDATE top_ups SET status = 'expired' WHERE checkout_session_id = $1 \
                     AND status IN ('creating', 'open') RETURNING tenant_id",
                )
                .bind(session_id)
                .fetch_optional(&mut **tx)
                .await?;
                match row {
                    Some(row) => (Some(row.try_get("tenant_id")?), "expired".to_owned()),
                    None => (None, "ignored: no open top-up for the session".to_owned()),
                }
            }
            EventAction::Invoice {
                customer_id,
                invoice_id,
                paid,
                status,
                amount_due_cents,
                amount_paid_cents,
                currency,
                hosted_url,
            } => {
                let tenant = sqlx::query("SELECT id FROM tenants WHERE stripe_customer_id = $1")
                    .bind(customer_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                match tenant {
                    None => (
                        None,
                        "ignored: no organization has this customer".to_owned(),
                    ),
                    Some(tenant) => {
                        let tenant_id: String = tenant.try_get("id")?;
                        sqlx::query(
                            "INSERT INTO stripe_invoices (id, tenant_id, status, \
                             amount_due_cents, amount_paid_cents, currency, hosted_url, \
                             updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                             amount_due_cents = excluded.amount_due_cents, \
                             amount_paid_cents = excluded.amount_paid_cents, \
                             hosted_url = excluded.hosted_url, updated_ms = excluded.updated_ms \
                             WHERE stripe_invoices.updated_ms <= excluded.updated_ms",
                        )
                        .bind(invoice_id)
                        .bind(&tenant_id)
                        .bind(status)
                        .bind(amount_due_cents)
                        .bind(amount_paid_cents)
                        .bind(currency)
                        .bind(hosted_url.as_deref())
                        .bind(event.created_ms)
                        .execute(&mut **tx)
                        .await?;
                        // An older event delivered late never overrides a newer one.
                        let standing = if *paid { "ok" } else { "past_due" };
                        let changed = sqlx::query(
                            "UPDATE tenants SET billing_status = $1, billing_status_ms = $2 \
                             WHERE id = $3 AND billing_status_ms <= $2",
                        )
                        .bind(standing)
                        .bind(event.created_ms)
                        .bind(&tenant_id)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                        let outcome = if changed == 1 {
                            format!("billing_status {standing}")
                        } else {
                            "ignored: a newer event set the billing status".to_owned()
                        };
                        (Some(tenant_id), outcome)
                    }
                }
            }
            EventAction::Ignore(why) => (None, format!("ignored: {why}")),
        };
        sqlx::query("UPDATE stripe_events SET tenant_id = $1, outcome = $2 WHERE id = $3")
            .bind(tenant_id.as_deref())
            .bind(&outcome)
            .bind(event.id)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(Applied::Applied { tenant_id, outcome })
    }

    /// Claims up to `limit` meter events not yet reported (and not claimed by another
    /// reporter) until `now + lease_ms`, oldest first.
    pub async fn claim_meter_batch(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<MeterRow>> {
        let rows = sqlx::query(
            "SELECT request_id FROM stripe_meter_outbox WHERE reported_ms IS NULL \
             AND claimed_until <= $1 ORDER BY event_ms LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let request_id: String = row.try_get("request_id")?;
            // A conditional UPDATE per row: of two reporters, one wins each row.
            let won = sqlx::query(
                "UPDATE stripe_meter_outbox SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE request_id = $2 AND reported_ms IS NULL AND claimed_until <= $3 \
                 RETURNING request_id, tenant_id, customer_id, value, event_ms, attempts",
            )
            .bind(now + lease_ms)
            .bind(&request_id)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = won {
                claimed.push(MeterRow {
                    request_id: row.try_get("request_id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    customer_id: row.try_get("customer_id")?,
                    value: row.try_get("value")?,
                    event_ms: row.try_get("event_ms")?,
                    attempts: row.try_get("attempts")?,
                });
            }
        }
        Ok(claimed)
    }

    /// Marks a meter event reported (or, with an error, releases it for a later retry).
    pub async fn finish_meter_event(
        &self,
        request_id: &str,
        result: Result<i64, &str>,
    ) -> StoreResult<()> {
        match result {
            Ok(reported_ms) => {
                sqlx::query(
                    "UPDATE stripe_meter_outbox SET reported_ms = $1, last_error = NULL \
                     WHERE request_id = $2",
                )
                .bind(reported_ms)
                .bind(request_id)
                .execute(self.pool())
                .await?;
            }
            Err(error) => {
                sqlx::query(
                    "UPDATE stripe_meter_outbox SET claimed_until = 0, last_error = $1 \
                     WHERE request_id = $2 AND reported_ms IS NULL",
                )
                .bind(error.chars().take(500).collect::<String>())
                .bind(request_id)
                .execute(self.pool())
                .await?;
            }
        }
        Ok(())
    }

    /// Meter events not yet reported (all tenants): what the reporter still owes Stripe.
    pub async fn pending_meter_events(&self) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM stripe_meter_outbox WHERE reported_ms IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(row.try_get("n")?)
    }
}

/// Credits a paid top-up once: the ledger entry's payment id is the Checkout Session's, so a
/// second event for the same session (`checkout.session.async_payment_succeeded` after
/// `completed`) credits nothing. A free-plan tenant that pays becomes pay-as-you-go.
async fn complete_top_up(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    top_up_id: &str,
    // From the event's metadata: checked against the top-up's owner before anything is posted.
    tenant_id: &str,
    session_id: &str,
    amount: Money,
    now: i64,
) -> StoreResult<(Option<String>, String)> {
    let top_up = sqlx::query("SELECT tenant_id, amount_micros FROM top_ups WHERE id = $1")
        .bind(top_up_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(top_up) = top_up else {
        return Ok((None, format!("ignored: no top-up '{top_up_id}'")));
    };
    let owner: String = top_up.try_get("tenant_id")?;
    if owner != tenant_id {
        return Ok((
            None,
            "ignored: the session's organization is not the top-up's".to_owned(),
        ));
    }
    let expected: i64 = top_up.try_get("amount_micros")?;
    if expected != amount.micros() {
        // Credit what was paid; the difference is in the outcome for an operator to see.
        tracing::warn!(
            top_up_id,
            expected,
            paid = amount.micros(),
            "a top-up was paid a different amount"
        );
    }
    let note = format!("Top-up {top_up_id} (Stripe Checkout)");
    let tenant = TenantId::from(tenant_id);
    let posted = post_credit_in(
        tx,
        &NewCredit {
            tenant_id: &tenant,
            kind: CreditKind::TopUp,
            amount,
            note: Some(&note),
            payment_id: Some(session_id),
            actor: Some("stripe"),
            refund_of: None,
            open_account: true,
        },
        now,
    )
    .await?;
    let entry_id = match posted {
        Posted::Posted { entry, .. } => entry.id,
        Posted::Duplicate => {
            return Ok((
                Some(tenant_id.to_owned()),
                "ignored: the session was credited already".to_owned(),
            ))
        }
        // A credit never overdraws, and `open_account` opens the account.
        Posted::NoAccount | Posted::Overdrawn { .. } => {
            return Err(StoreError::Conflict(
                "a top-up credit could not be posted".into(),
            ))
        }
    };
    sqlx::query(
        "UPDATE top_ups SET status = 'completed', checkout_session_id = $1, completed_ms = $2, \
         ledger_entry_id = $3 WHERE id = $4",
    )
    .bind(session_id)
    .bind(now)
    .bind(&entry_id)
    .bind(top_up_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE tenants SET plan = 'pay_as_you_go' WHERE id = $1 AND plan = 'free'")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok((Some(tenant_id.to_owned()), format!("credited {amount}")))
}
