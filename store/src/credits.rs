//! Prepaid credits: an append-only ledger per tenant (grants, top-ups, usage debits,
//! adjustments) and the account row that holds its sum and what in-flight requests reserve.
//! Every ledger entry changes the account's balance in the same transaction, so the balance is
//! always the ledger's sum (a test checks it).
//!
//! Every entry points at its cause: a usage debit at its request (`request_id`, unique: one
//! debit per request, written when the request is settled), a top-up at its payment
//! (`payment_id`, unique: a payment is credited once however often it is reported), an
//! adjustment or refund at the operator who made it (`actor`) and its reason (`note`), a refund
//! at the entry it reverses (`refund_of`, unique: refunded at most once).

use crate::ids::TenantId;
use sqlx::Row as _;

use super::{created_ms, now_ms, Page, PageRequest, Store, StoreResult};
use crate::money::Money;
use crate::secret::new_id;

/// What a ledger entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    /// Free credits (the free plan's grant at sign-up).
    Grant,
    /// Credits bought.
    TopUp,
    /// Manual correction by an operator, with a reason.
    Adjustment,
    /// A usage debit given back by an operator (points at the debit it reverses).
    Refund,
}

impl CreditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditKind::Grant => "grant",
            CreditKind::TopUp => "top_up",
            CreditKind::Adjustment => "adjustment",
            CreditKind::Refund => "refund",
        }
    }
}

/// A ledger entry to post, with its cause.
#[derive(Debug, Clone)]
pub struct NewCredit<'a> {
    pub tenant_id: &'a TenantId,
    pub kind: CreditKind,
    pub amount: Money,
    /// The reason (adjustments, refunds) or a description (grants, top-ups).
    pub note: Option<&'a str>,
    /// The payment a top-up came from.
    pub payment_id: Option<&'a str>,
    /// Who posted it: `operator:<name>`, `stripe`, `system`.
    pub actor: Option<&'a str>,
    /// The entry a refund reverses.
    pub refund_of: Option<&'a str>,
    /// Opens a prepaid account when the tenant has none (top-ups, grants); otherwise a tenant
    /// without one gets [`Posted::NoAccount`].
    pub open_account: bool,
}

/// What posting an entry did.
#[derive(Debug, Clone)]
pub enum Posted {
    Posted {
        entry: LedgerEntry,
        balance: CreditBalance,
    },
    /// The payment was credited, or the entry refunded, already: nothing changed.
    Duplicate,
    /// The tenant has no prepaid account (postpaid) and none was to be opened.
    NoAccount,
    /// A debit would take the balance below what in-flight requests hold.
    Overdrawn { balance: CreditBalance },
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
    pub note: Option<String>,
    pub payment_id: Option<String>,
    pub actor: Option<String>,
    pub refund_of: Option<String>,
    pub created_ms: i64,
}

const LEDGER_COLUMNS: &str =
    "id, kind, amount_micros, request_id, note, payment_id, actor, refund_of, created_ms";

/// The tenant's ledger as a paged listing.
fn ledger_listing(newest_first: bool) -> super::page::Listing<'static, LedgerEntry> {
    super::page::Listing {
        columns: LEDGER_COLUMNS,
        table: "credit_ledger",
        filter: "",
        binds: &[],
        newest_first,
        from_row: entry_from_row,
    }
}

fn entry_from_row(row: &super::Row) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        amount: Money::from_micros(row.try_get("amount_micros")?),
        request_id: row.try_get("request_id")?,
        note: row.try_get("note")?,
        payment_id: row.try_get("payment_id")?,
        actor: row.try_get("actor")?,
        refund_of: row.try_get("refund_of")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    /// Opens a prepaid account for the tenant with `grant` as its first entry; nothing when it
    /// has one already. Returns whether the account was opened.
    pub async fn open_credit_account(
        &self,
        tenant_id: &TenantId,
        grant: Money,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let opened = sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, updated_ms) \
             VALUES ($1, 0, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(now)
        .execute(&mut **tx)
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
        tenant_id: &TenantId,
        kind: CreditKind,
        amount: Money,
        note: Option<&str>,
    ) -> StoreResult<CreditBalance> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, updated_ms) \
             VALUES ($1, 0, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        append(&mut tx, tenant_id, kind, amount, note, now).await?;
        let row = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(CreditBalance {
            balance: Money::from_micros(row.try_get("balance_micros")?),
            reserved: Money::from_micros(row.try_get("reserved_micros")?),
        })
    }

    /// The tenant's prepaid account; `None` for postpaid tenants.
    pub async fn credit_balance(&self, tenant_id: &TenantId) -> StoreResult<Option<CreditBalance>> {
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
    pub async fn credit_ledger(&self, tenant_id: &TenantId) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE tenant_id = $1 \
             ORDER BY created_ms, id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// One page of the tenant's ledger, newest first.
    pub async fn credit_ledger_page(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<LedgerEntry>> {
        self.fetch_page(tenant_id, ledger_listing(true), page).await
    }

    /// The page of the tenant's ledger just newer than the entry `page.after` (the way back
    /// from [`Store::credit_ledger_page`]), newest first; `has_more` says whether still newer
    /// entries exist. An id of another tenant matches nothing.
    pub async fn credit_ledger_page_newer(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<LedgerEntry>> {
        let mut page = self
            .fetch_page(tenant_id, ledger_listing(false), page)
            .await?;
        page.items.reverse();
        Ok(page)
    }

    /// Whether `entry_id` is one of the tenant's ledger entries (a cursor to check).
    pub async fn has_ledger_entry(
        &self,
        tenant_id: &TenantId,
        entry_id: &str,
    ) -> StoreResult<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM credit_ledger WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(entry_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// How many entries the tenant's ledger has, and the sum of its grants.
    pub async fn credit_ledger_summary(&self, tenant_id: &TenantId) -> StoreResult<(i64, Money)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS entries, \
             CAST(COALESCE(SUM(CASE WHEN kind = 'grant' THEN amount_micros ELSE 0 END), 0) AS BIGINT) AS granted \
             FROM credit_ledger WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        Ok((
            row.try_get("entries")?,
            Money::from_micros(row.try_get("granted")?),
        ))
    }

    /// The usage debit of one of the tenant's requests, if it was settled from credits.
    pub async fn usage_debit(
        &self,
        tenant_id: &TenantId,
        request_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        let row = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE tenant_id = $1 \
             AND request_id = $2 AND kind = 'usage'"
        ))
        .bind(tenant_id)
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// Posts one entry with its cause and moves the balance by it, in one transaction. A
    /// payment or refund seen before changes nothing ([`Posted::Duplicate`]); a debit never
    /// takes the balance below what in-flight requests hold.
    pub async fn post_credit(&self, c: &NewCredit<'_>) -> StoreResult<Posted> {
        let mut tx = self.begin_write().await?;
        let posted = post_credit_in(&mut tx, c, created_ms()).await?;
        if matches!(posted, Posted::Posted { .. }) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(posted)
    }
}

/// [`Store::post_credit`] inside the caller's transaction (a Stripe event applies its credit
/// in the transaction that records the event). On anything but [`Posted::Posted`] the caller
/// must roll back, or commit knowing that the entry was not written.
pub(crate) async fn post_credit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &NewCredit<'_>,
    now: i64,
) -> StoreResult<Posted> {
    let entry = LedgerEntry {
        id: new_id("cred"),
        kind: c.kind.as_str().to_owned(),
        amount: c.amount,
        request_id: None,
        note: c.note.map(str::to_owned),
        payment_id: c.payment_id.map(str::to_owned),
        actor: c.actor.map(str::to_owned),
        refund_of: c.refund_of.map(str::to_owned),
        created_ms: now,
    };
    // The entry first: its unique payment / refund keys decide duplicates atomically (without
    // an error, which would end a PostgreSQL transaction).
    let inserted = sqlx::query(
        "INSERT INTO credit_ledger (id, tenant_id, kind, amount_micros, request_id, note, \
         payment_id, actor, refund_of, created_ms) \
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(&entry.id)
    .bind(c.tenant_id)
    .bind(&entry.kind)
    .bind(c.amount.micros())
    .bind(c.note)
    .bind(c.payment_id)
    .bind(c.actor)
    .bind(c.refund_of)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Posted::Duplicate);
    }
    if c.open_account {
        sqlx::query(
            "INSERT INTO credit_accounts (tenant_id, balance_micros, reserved_micros, \
             updated_ms) VALUES ($1, 0, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(c.tenant_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    let moved = sqlx::query(
        "UPDATE credit_accounts SET balance_micros = balance_micros + $1, updated_ms = $2 \
         WHERE tenant_id = $3 AND balance_micros + $1 >= reserved_micros",
    )
    .bind(c.amount.micros())
    .bind(now)
    .bind(c.tenant_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    let account = sqlx::query(
        "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
    )
    .bind(c.tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(account) = account else {
        return Ok(Posted::NoAccount);
    };
    let balance = CreditBalance {
        balance: Money::from_micros(account.try_get("balance_micros")?),
        reserved: Money::from_micros(account.try_get("reserved_micros")?),
    };
    if !moved {
        return Ok(Posted::Overdrawn { balance });
    }
    Ok(Posted::Posted { entry, balance })
}

async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &TenantId,
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
         actor, created_ms) VALUES ($1, $2, $3, $4, NULL, $5, 'system', $6)",
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
