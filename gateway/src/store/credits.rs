//! Prepaid credits: an append-only ledger per tenant (grants, top-ups, usage debits,
//! adjustments) and the account row that holds its sum and what in-flight requests reserve.
//! Every ledger entry changes the account's balance in the same transaction, so the balance is
//! always the ledger's sum (a test checks it).

use sqlx::Row as _;

use super::{now_ms, Store, StoreResult};
use crate::auth::secret::new_id;
use crate::metering::money::Money;

/// What a ledger entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    /// Free credits (the free plan's grant at sign-up).
    Grant,
    /// Credits bought.
    TopUp,
    /// Manual correction by an operator.
    Adjustment,
}

impl CreditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditKind::Grant => "grant",
            CreditKind::TopUp => "top_up",
            CreditKind::Adjustment => "adjustment",
        }
    }
}

/// A prepaid account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditBalance {
    /// The ledger's sum.
    pub balance: Money,
    /// Held by requests in flight.
    pub reserved: Money,
}

impl CreditBalance {
    /// What a new request can still reserve.
    pub fn available(&self) -> Money {
        Money::from_micros(self.balance.micros() - self.reserved.micros())
    }
}

/// One ledger entry.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub id: String,
    pub kind: String,
    pub amount: Money,
    pub request_id: Option<String>,
    pub created_ms: i64,
}

impl Store {
    /// Opens a prepaid account for the tenant with `grant` as its first entry; nothing when it
    /// has one already. Returns whether the account was opened.
    pub async fn open_credit_account(&self, tenant_id: &str, grant: Money) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let opened = sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, updated_ms) \
             VALUES ($1, 0, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if opened && grant > Money::ZERO {
            append(
                &mut tx,
                tenant_id,
                CreditKind::Grant,
                grant,
                Some("free plan grant"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(opened)
    }

    /// Appends a ledger entry (opening the account when needed) and moves the balance by it.
    pub async fn add_credits(
        &self,
        tenant_id: &str,
        kind: CreditKind,
        amount: Money,
        note: Option<&str>,
    ) -> StoreResult<CreditBalance> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, updated_ms) \
             VALUES ($1, 0, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, tenant_id, kind, amount, note, now).await?;
        let row = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CreditBalance {
            balance: Money::from_micros(row.try_get("balance_micros")?),
            reserved: Money::from_micros(row.try_get("reserved_micros")?),
        })
    }

    /// The tenant's prepaid account; `None` for postpaid tenants.
    pub async fn credit_balance(&self, tenant_id: &str) -> StoreResult<Option<CreditBalance>> {
        let row = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(CreditBalance {
                balance: Money::from_micros(row.try_get("balance_micros")?),
                reserved: Money::from_micros(row.try_get("reserved_micros")?),
            })
        })
        .transpose()
    }

    /// The tenant's ledger, oldest first.
    pub async fn credit_ledger(&self, tenant_id: &str) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount_micros, request_id, created_ms FROM credit_ledger \
             WHERE tenant_id = $1 ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerEntry {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    amount: Money::from_micros(row.try_get("amount_micros")?),
                    request_id: row.try_get("request_id")?,
                    created_ms: row.try_get("created_ms")?,
                })
            })
            .collect()
    }
}

async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    kind: CreditKind,
    amount: Money,
    note: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE credit_accounts SET balance_micros = balance_micros + $1, updated_ms = $2 \
         WHERE tenant_id = $3",
    )
    .bind(amount.micros())
    .bind(now)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO credit_ledger (id, tenant_id, kind, amount_micros, request_id, note, \
         created_ms) VALUES ($1, $2, $3, $4, NULL, $5, $6)",
    )
    .bind(new_id("cred"))
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(amount.micros())
    .bind(note)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
