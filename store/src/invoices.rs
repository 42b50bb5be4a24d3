//! Invoices: a tenant's statement for one period, computed from its usage events, and stored
//! once when the period is finalized.
//!
//! Immutability is the store's guarantee: this file is the only code that writes `invoices`
//! and `invoice_lines`, it only ever INSERTs them (no UPDATE, no DELETE anywhere), and a
//! second finalization of a period keeps the first invoice (`UNIQUE (tenant_id,
//! period_start_ms)`, `ON CONFLICT DO NOTHING`). Events that change after finalization (none
//! should: the routine waits out the orphan grace) do not change a finalized invoice.

use crate::ids::TenantId;
use sqlx::Row as _;

use super::{created_ms, Page, PageRequest, Row, Store, StoreResult};
use crate::money::{Money, Prices};
use crate::prices::CURRENCY;
use crate::secret::new_id;

/// One line: the billed requests of one model at one catalog price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub model: String,
    /// The catalog price (`None` for events older than the catalog).
    pub price_id: Option<String>,
    pub requests: i64,
    /// Prompt tokens billed at the input price (not served from the prefix cache).
    pub input_tokens: i64,
    /// Prompt tokens billed at the cached-input price.
    pub cached_tokens: i64,
    pub output_tokens: i64,
    /// The unit prices (per 1M tokens) of `price_id`.
    pub prices: Option<Prices>,
    /// The sum of the requests' costs (each rounded up to the micro-dollar, as debited).
    pub amount: Money,
    /// What a line that is not tokens is (a deployment's reserved capacity); `model` is
    /// then the deployment's name.
    pub description: Option<String>,
}

/// Whether a statement is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// The running statement of a period that is not finalized yet.
    Draft,
    /// Stored; never changes again.
    Finalized,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Finalized => "finalized",
        }
    }
}

/// A statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `None` for a draft.
    pub id: Option<String>,
    pub tenant_id: TenantId,
    pub status: InvoiceStatus,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub plan: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Money,
    /// What the prepaid credits paid (the ledger's usage debits of these requests).
    pub credits_applied: Money,
    /// `subtotal - credits_applied`: what is owed (postpaid usage).
    pub amount_due: Money,
    /// Finalization time (drafts: when computed).
    pub created_ms: i64,
}

const INVOICE_COLUMNS: &str = "id, tenant_id, period_start_ms, period_end_ms, plan, currency, \
     subtotal_micros, credits_applied_micros, amount_due_micros, created_ms";

fn invoice_from_row(row: &Row) -> StoreResult<Invoice> {
    Ok(Invoice {
        id: Some(row.try_get("id")?),
        tenant_id: row.try_get("tenant_id")?,
        status: InvoiceStatus::Finalized,
        period_start_ms: row.try_get("period_start_ms")?,
        period_end_ms: row.try_get("period_end_ms")?,
        plan: row.try_get("plan")?,
        currency: row.try_get("currency")?,
        lines: Vec::new(),
        subtotal: Money::from_micros(row.try_get("subtotal_micros")?),
        credits_applied: Money::from_micros(row.try_get("credits_applied_micros")?),
        amount_due: Money::from_micros(row.try_get("amount_due_micros")?),
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    /// The running statement of `[start_ms, end_ms)` from the tenant's finished usage events
    /// (by the requests' start), one line per model and catalog price.
    pub async fn draft_invoice(
        &self,
        tenant_id: &TenantId,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Invoice> {
        let tenant = self.tenant(tenant_id).await?;
        let rows = sqlx::query(
            "SELECT model, price_id, CAST(COUNT(*) AS BIGINT) AS requests, \
             CAST(SUM(prompt_tokens - cached_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cost_micros) AS BIGINT) AS amount, \
             CAST(SUM(CASE WHEN reserved_micros > 0 THEN cost_micros ELSE 0 END) AS BIGINT) \
                 AS prepaid \
             FROM usage_events WHERE tenant_id = $1 AND started_ms >= $2 AND started_ms < $3 \
             AND status <> 'in_progress' AND status <> 'rejected' \
             GROUP BY model, price_id",
        )
        .bind(tenant_id)
        .bind(start_ms)
        .bind(end_ms)
        .fetch_all(self.pool())
        .await?;
        let mut lines = Vec::with_capacity(rows.len());
        let mut keyed = Vec::with_capacity(rows.len());
        let mut subtotal = 0i64;
        let mut prepaid = 0i64;
        for row in &rows {
            let price_id: Option<String> = row.try_get("price_id")?;
            let price = match &price_id {
                Some(id) => self.price_by_id(id).await?,
                None => None,
            };
            let amount: i64 = row.try_get("amount")?;
            subtotal += amount;
            prepaid += row.try_get::<i64, _>("prepaid")?;
            keyed.push(price.as_ref().map_or(-1, |p| p.effective_ms));
            lines.push(InvoiceLine {
                model: row.try_get("model")?,
                price_id,
                requests: row.try_get("requests")?,
                input_tokens: row.try_get("input_tokens")?,
                cached_tokens: row.try_get("cached_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                prices: price.map(|p| p.prices),
                amount: Money::from_micros(amount),
                description: None,
            });
        }
        // Reserved capacity of private deployments, one line per deployment (by the start of
        // each charged period); what prepaid credits paid of it counts as applied.
        let charges = sqlx::query(
            "SELECT d.name, CAST(SUM(c.amount_micros) AS BIGINT) AS amount, \
             CAST(SUM(c.paid_micros) AS BIGINT) AS paid, \
             CAST(SUM(c.replicas * (c.period_end_ms - c.period_start_ms)) AS BIGINT) AS replica_ms \
             FROM deployment_charges c JOIN deployments d ON d.id = c.deployment_id \
             WHERE c.tenant_id = $1 AND c.period_start_ms >= $2 AND c.period_start_ms < $3 \
             GROUP BY c.deployment_id, d.name",
        )
        .bind(tenant_id)
        .bind(start_ms)
        .bind(end_ms)
        .fetch_all(self.pool())
        .await?;
        for row in &charges {
            let name: String = row.try_get("name")?;
            let amount: i64 = row.try_get("amount")?;
            let replica_ms: i64 = row.try_get("replica_ms")?;
            subtotal += amount;
            prepaid += row.try_get::<i64, _>("paid")?;
            keyed.push(i64::MAX);
            lines.push(InvoiceLine {
                description: Some(format!(
                    "Reserved capacity of deployment '{name}': {:.3} replica-hours",
                    replica_ms as f64 / 3_600_000.0
                )),
                model: name,
                price_id: None,
                requests: 0,
                input_tokens: 0,
                cached_tokens: 0,
                output_tokens: 0,
                prices: None,
                amount: Money::from_micros(amount),
            });
        }
        // By model, then by when the price took effect.
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|&a, &b| (&lines[a].model, keyed[a]).cmp(&(&lines[b].model, keyed[b])));
        let lines = order.into_iter().map(|i| lines[i].clone()).collect();
        Ok(Invoice {
            id: None,
            tenant_id: tenant_id.to_owned(),
            status: InvoiceStatus::Draft,
            period_start_ms: start_ms,
            period_end_ms: end_ms,
            plan: tenant.plan.as_str().to_owned(),
            currency: CURRENCY.to_owned(),
            lines,
            subtotal: Money::from_micros(subtotal),
            credits_applied: Money::from_micros(prepaid),
            amount_due: Money::from_micros(subtotal - prepaid),
            created_ms: created_ms(),
        })
    }

    /// Finalizes the tenant's statement of `[start_ms, end_ms)`: stores it once and returns
    /// the stored invoice. When the period is finalized already, returns that invoice as it
    /// was stored, whatever the events say now.
    pub async fn finalize_invoice(
        &self,
        tenant_id: &TenantId,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Invoice> {
        if let Some(existing) = self.invoice_for_period(tenant_id, start_ms).await? {
            return Ok(existing);
        }
        let mut invoice = self.draft_invoice(tenant_id, start_ms, end_ms).await?;
        let id = new_id("inv");
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO invoices (id, tenant_id, period_start_ms, period_end_ms, plan, \
             currency, subtotal_micros, credits_applied_micros, amount_due_micros, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant_id, period_start_ms) DO NOTHING",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(start_ms)
        .bind(end_ms)
        .bind(&invoice.plan)
        .bind(&invoice.currency)
        .bind(invoice.subtotal.micros())
        .bind(invoice.credits_applied.micros())
        .bind(invoice.amount_due.micros())
        .bind(invoice.created_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            // Another replica finalized it first: theirs is the invoice.
            tx.rollback().await?;
            return self
                .invoice_for_period(tenant_id, start_ms)
                .await?
                .ok_or_else(|| super::StoreError::NotFound("No invoice.".to_owned()));
        }
        for (n, line) in invoice.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_lines (invoice_id, line_no, model, price_id, requests, \
                 input_tokens, cached_tokens, output_tokens, input_micros_per_million, \
                 cached_input_micros_per_million, output_micros_per_million, amount_micros, \
                 description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&id)
            .bind(n as i64)
            .bind(&line.model)
            .bind(line.price_id.as_deref())
            .bind(line.requests)
            .bind(line.input_tokens)
            .bind(line.cached_tokens)
            .bind(line.output_tokens)
            .bind(line.prices.map(|p| p.input_micros_per_million))
            .bind(line.prices.map(|p| p.cached_input_micros_per_million))
            .bind(line.prices.map(|p| p.output_micros_per_million))
            .bind(line.amount.micros())
            .bind(line.description.as_deref())
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        invoice.id = Some(id);
        invoice.status = InvoiceStatus::Finalized;
        Ok(invoice)
    }

    /// Tenants with billed requests in `[start_ms, end_ms)` and no invoice for it yet.
    pub async fn tenants_to_invoice(
        &self,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<TenantId>> {
        let rows = sqlx::query(
            "SELECT tenant_id FROM (\
                 SELECT e.tenant_id FROM usage_events e WHERE e.started_ms >= $1 \
                 AND e.started_ms < $2 AND e.status <> 'in_progress' \
                 AND e.status <> 'rejected' \
                 UNION SELECT c.tenant_id FROM deployment_charges c \
                 WHERE c.period_start_ms >= $1 AND c.period_start_ms < $2) t \
             WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = t.tenant_id \
                 AND i.period_start_ms = $1) \
             ORDER BY tenant_id",
        )
        .bind(start_ms)
        .bind(end_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("tenant_id")?)).collect()
    }

    /// The tenant's finalized invoice of the period starting at `start_ms`, with its lines.
    pub async fn invoice_for_period(
        &self,
        tenant_id: &TenantId,
        start_ms: i64,
    ) -> StoreResult<Option<Invoice>> {
        let row = sqlx::query(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND period_start_ms = $2"
        ))
        .bind(tenant_id)
        .bind(start_ms)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(Some(self.with_lines(invoice_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// One finalized invoice of the tenant, with its lines.
    pub async fn invoice(&self, tenant_id: &TenantId, id: &str) -> StoreResult<Option<Invoice>> {
        let row = sqlx::query(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(Some(self.with_lines(invoice_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// A page of the tenant's finalized invoices, newest first, with their lines.
    pub async fn invoices_page(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Invoice>> {
        let listing = super::page::Listing {
            columns: INVOICE_COLUMNS,
            table: "invoices",
            filter: "",
            binds: &[],
            newest_first: true,
            from_row: invoice_from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    async fn with_lines(&self, mut invoice: Invoice) -> StoreResult<Invoice> {
        let rows = sqlx::query(
            "SELECT model, price_id, requests, input_tokens, cached_tokens, output_tokens, \
             input_micros_per_million, cached_input_micros_per_million, \
             output_micros_per_million, amount_micros, description FROM invoice_lines \
             WHERE invoice_id = $1 ORDER BY line_no",
        )
        .bind(invoice.id.as_deref())
        .fetch_all(self.pool())
        .await?;
        invoice.lines = rows
            .iter()
            .map(|row| {
                let input: Option<i64> = row.try_get("input_micros_per_million")?;
                let cached: Option<i64> = row.try_get("cached_input_micros_per_million")?;
                let output: Option<i64> = row.try_get("output_micros_per_million")?;
                Ok(InvoiceLine {
                    model: row.try_get("model")?,
                    price_id: row.try_get("price_id")?,
                    requests: row.try_get("requests")?,
                    input_tokens: row.try_get("input_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    prices: match (input, cached, output) {
                        (Some(i), Some(c), Some(o)) => Some(Prices {
                            input_micros_per_million: i,
                            cached_input_micros_per_million: c,
                            output_micros_per_million: o,
                        }),
                        _ => None,
                    },
                    amount: Money::from_micros(row.try_get("amount_micros")?),
                    description: row.try_get("description")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(invoice)
    }
}
