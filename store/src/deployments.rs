//! Private deployments: an organization's own replicas of a model, their state machine, the
//! history of its transitions and the reserved capacity they are charged for.
//!
//! A transition is one conditional `UPDATE ... WHERE state IN (...)` plus its event row, in
//! one transaction: two callers racing on the same deployment cannot both move it, and the one
//! that loses learns the state it is really in ([`Moved::Refused`]).

use crate::ids::TenantId;
use sqlx::Row as _;

use super::page::{Listing, Page, PageRequest};
use super::{created_ms, now_ms, Row, Store, StoreError, StoreResult};
use crate::money::Money;
use crate::secret::new_id;

/// A deployment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub model: String,
    pub hardware: String,
    pub replicas_min: i64,
    pub replicas_max: i64,
    /// How many replicas run now, between min and max (the autoscaler moves it).
    pub replicas_target: i64,
    pub kv_cache_memory: i64,
    pub max_model_len: Option<i64>,
    pub overflow: String,
    pub state: String,
    pub status_message: Option<String>,
    pub ready_replicas: i64,
    /// Base URLs of the replicas that answer `/ready`.
    pub endpoints: Vec<String>,
    pub billed_until_ms: Option<i64>,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a new deployment asks for.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub tenant_id: &'a TenantId,
    pub name: &'a str,
    pub model: &'a str,
    pub hardware: &'a str,
    pub replicas_min: i64,
    pub replicas_max: i64,
    pub kv_cache_memory: i64,
    pub max_model_len: Option<i64>,
    pub overflow: &'a str,
    /// The first state (`requested`, or `provisioning` where no approval is needed).
    pub state: &'a str,
    pub created_by: &'a str,
}

/// One transition in a deployment's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentEvent {
    pub id: String,
    pub deployment_id: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub message: Option<String>,
    pub created_ms: i64,
}

/// A transition to make: from one of `from` to `to`, optionally changing the replicas.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub from: &'a [&'a str],
    pub to: &'a str,
    pub actor: &'a str,
    pub message: Option<&'a str>,
    /// New `(min, max)` replicas, set in the same update (the target is kept within them).
    pub replicas: Option<(i64, i64)>,
    /// A new target (the autoscaler's); clamped to the replicas' range.
    pub target: Option<i64>,
}

/// What a transition did.
#[derive(Debug, Clone)]
pub enum Moved {
    Moved(Deployment),
    /// The deployment was not in one of the `from` states; this is what it is.
    Refused(Deployment),
}

/// A capacity charge to record.
#[derive(Debug, Clone)]
pub struct NewCharge<'a> {
    pub deployment: &'a Deployment,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub replicas: i64,
    pub micros_per_replica_hour: i64,
    /// The catalog row of that price.
    pub price_id: Option<&'a str>,
}

/// A dated row of the capacity price catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityPrice {
    pub id: String,
    pub hardware: String,
    pub micros_per_replica_hour: i64,
    pub effective_ms: i64,
    pub created_ms: i64,
    /// `config` (seeded) or `operator:<name>`.
    pub created_by: String,
}

const PRICE_COLUMNS: &str =
    "id, hardware, micros_per_replica_hour, effective_ms, created_ms, created_by";

fn price_from_row(row: &Row) -> StoreResult<CapacityPrice> {
    Ok(CapacityPrice {
        id: row.try_get("id")?,
        hardware: row.try_get("hardware")?,
        micros_per_replica_hour: row.try_get("micros_per_replica_hour")?,
        effective_ms: row.try_get("effective_ms")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
    })
}

/// A recorded capacity charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    pub deployment_id: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub replicas: i64,
    pub micros_per_replica_hour: i64,
    pub amount: Money,
    /// What the prepaid balance paid of it (nothing for a postpaid organization).
    pub paid: Money,
    /// What a prepaid balance could not pay (its credits ran out).
    pub short: Money,
}

/// What recording a charge did.
#[derive(Debug, Clone)]
pub enum Charged {
    Charged(Charge),
    /// Another replica of the gateway charged this period already.
    Duplicate,
}

impl Charge {
    /// A prepaid organization's credits ran out before the charge was paid in full.
    pub fn unpaid(&self) -> bool {
        self.short.micros() > 0
    }
}

const COLUMNS: &str = "id, tenant_id, name, model, hardware, replicas_min, replicas_max, \
     replicas_target, kv_cache_memory, max_model_len, overflow, state, status_message, \
     ready_replicas, endpoints, billed_until_ms, created_by, created_ms, updated_ms";

fn from_row(row: &Row) -> StoreResult<Deployment> {
    let endpoints: String = row.try_get("endpoints")?;
    let replicas_min: i64 = row.try_get("replicas_min")?;
    let replicas_max: i64 = row.try_get("replicas_max")?;
    let target: Option<i64> = row.try_get("replicas_target")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        model: row.try_get("model")?,
        hardware: row.try_get("hardware")?,
        replicas_min,
        replicas_max,
        replicas_target: target
            .unwrap_or(replicas_min)
            .clamp(replicas_min, replicas_max.max(replicas_min)),
        kv_cache_memory: row.try_get("kv_cache_memory")?,
        max_model_len: row.try_get("max_model_len")?,
        overflow: row.try_get("overflow")?,
        state: row.try_get("state")?,
        status_message: row.try_get("status_message")?,
        ready_replicas: row.try_get("ready_replicas")?,
        endpoints: endpoints
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        billed_until_ms: row.try_get("billed_until_ms")?,
        created_by: row.try_get("created_by")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn event_from_row(row: &Row) -> StoreResult<DeploymentEvent> {
    Ok(DeploymentEvent {
        id: row.try_get("id")?,
        deployment_id: row.try_get("deployment_id")?,
        from_state: row.try_get("from_state")?,
        to_state: row.try_get("to_state")?,
        actor: row.try_get("actor")?,
        message: row.try_get("message")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("No deployment found with id '{id}'."))
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: &Deployment,
    from: Option<&str>,
    to: &str,
    actor: &str,
    message: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO deployment_events (id, tenant_id, deployment_id, from_state, to_state, \
         actor, message, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("depev"))
    .bind(&d.tenant_id)
    .bind(&d.id)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(message)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Creates a deployment in `new.state`; a name taken by another of the organization's
    /// deployments that is not deleted is a Conflict.
    pub async fn create_deployment(&self, new: &NewDeployment<'_>) -> StoreResult<Deployment> {
        let now = created_ms();
        let d = Deployment {
            id: new_id("dep"),
            tenant_id: new.tenant_id.to_owned(),
            name: new.name.to_owned(),
            model: new.model.to_owned(),
            hardware: new.hardware.to_owned(),
            replicas_min: new.replicas_min,
            replicas_max: new.replicas_max,
            replicas_target: new.replicas_min,
            kv_cache_memory: new.kv_cache_memory,
            max_model_len: new.max_model_len,
            overflow: new.overflow.to_owned(),
            state: new.state.to_owned(),
            status_message: None,
            ready_replicas: 0,
            endpoints: Vec::new(),
            billed_until_ms: None,
            created_by: new.created_by.to_owned(),
            created_ms: now,
            updated_ms: now,
        };
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO deployments (id, tenant_id, name, model, hardware, replicas_min, \
             replicas_max, replicas_target, kv_cache_memory, max_model_len, overflow, state, \
             created_by, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.tenant_id)
        .bind(&d.name)
        .bind(&d.model)
        .bind(&d.hardware)
        .bind(d.replicas_min)
        .bind(d.replicas_max)
        .bind(d.replicas_target)
        .bind(d.kv_cache_memory)
        .bind(d.max_model_len)
        .bind(&d.overflow)
        .bind(&d.state)
        .bind(&d.created_by)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "The organization has a deployment named '{}' already.",
                d.name
            )));
        }
        insert_event(&mut tx, &d, None, &d.state, new.created_by, None, now).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// One of the tenant's deployments (deleted ones too: their history stays readable).
    pub async fn deployment(&self, tenant_id: &TenantId, id: &str) -> StoreResult<Deployment> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM deployments WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| not_found(id))?;
        from_row(&row)
    }

    /// The organization a deployment belongs to (for the platform operator, who names
    /// deployments by id alone).
    pub async fn deployment_owner(&self, id: &str) -> StoreResult<Option<TenantId>> {
        let row = sqlx::query("SELECT tenant_id FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("tenant_id")?),
            None => None,
        })
    }

    /// How many deployments the tenant has that are not deleted.
    pub async fn count_deployments(&self, tenant_id: &TenantId) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM deployments \
             WHERE tenant_id = $1 AND state <> 'deleted'",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Oldest first; deleted ones only when asked.
    pub async fn list_deployments(
        &self,
        tenant_id: &TenantId,
        include_deleted: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<Deployment>> {
        let listing = Listing {
            columns: COLUMNS,
            table: "deployments",
            filter: if include_deleted {
                ""
            } else {
                "AND state <> 'deleted'"
            },
            binds: &[],
            newest_first: false,
            from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Every deployment in one of `states`, of every tenant (for the driver's reconciler and
    /// the gateway's routing table).
    pub async fn deployments_in(&self, states: &[&str]) -> StoreResult<Vec<Deployment>> {
        let placeholders: Vec<String> = (1..=states.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM deployments WHERE state IN ({}) ORDER BY created_ms, id",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for s in states {
            q = q.bind(*s);
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Moves the deployment from one of `t.from` to `t.to` and records the event, atomically.
    pub async fn transition_deployment(
        &self,
        tenant_id: &TenantId,
        id: &str,
        t: &Transition<'_>,
    ) -> StoreResult<Moved> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM deployments WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found(id))?;
        let before = from_row(&row)?;
        if !t.from.contains(&before.state.as_str()) {
            tx.rollback().await?;
            return Ok(Moved::Refused(before));
        }
        let (min, max) = t
            .replicas
            .unwrap_or((before.replicas_min, before.replicas_max));
        let target = t
            .target
            .unwrap_or(before.replicas_target)
            .clamp(min, max.max(min));
        let moved = sqlx::query(
            "UPDATE deployments SET state = $1, status_message = $2, replicas_min = $3, \
             replicas_max = $4, replicas_target = $5, updated_ms = $6 WHERE tenant_id = $7 \
             AND id = $8 AND state = $9",
        )
        .bind(t.to)
        .bind(t.message)
        .bind(min)
        .bind(max)
        .bind(target)
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .bind(&before.state)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if moved == 0 {
            // Changed between the read and the update (PostgreSQL's read committed).
            tx.rollback().await?;
            return Ok(Moved::Refused(self.deployment(tenant_id, id).await?));
        }
        if before.state != t.to {
            insert_event(
                &mut tx,
                &before,
                Some(&before.state),
                t.to,
                t.actor,
                t.message,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Moved::Moved(Deployment {
            state: t.to.to_owned(),
            status_message: t.message.map(str::to_owned),
            replicas_min: min,
            replicas_max: max,
            replicas_target: target,
            updated_ms: now,
            ..before
        }))
    }

    /// What the driver sees of the deployment's replicas (no transition).
    pub async fn set_deployment_replicas(
        &self,
        id: &str,
        ready: i64,
        endpoints: &[String],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE deployments SET ready_replicas = $1, endpoints = $2 WHERE id = $3 \
             AND (ready_replicas <> $1 OR endpoints <> $2)",
        )
        .bind(ready)
        .bind(endpoints.join("\n"))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets (or clears) the time up to which reserved capacity is charged.
    pub async fn set_deployment_billed_until(
        &self,
        id: &str,
        billed_until_ms: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE deployments SET billed_until_ms = $1 WHERE id = $2")
            .bind(billed_until_ms)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The deployment's transitions, oldest first.
    pub async fn deployment_events(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> StoreResult<Vec<DeploymentEvent>> {
        sqlx::query(
            "SELECT id, deployment_id, from_state, to_state, actor, message, created_ms \
             FROM deployment_events WHERE tenant_id = $1 AND deployment_id = $2 \
             ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    /// Records the charge of one period of reserved capacity and moves `billed_until_ms` to
    /// its end, in one transaction; a prepaid tenant's balance pays it (as far as it goes,
    /// never below what in-flight requests hold). A period charged before changes nothing.
    pub async fn charge_deployment(&self, c: &NewCharge<'_>) -> StoreResult<Charged> {
        let d = c.deployment;
        let hours_milli = (c.period_end_ms - c.period_start_ms).max(0);
        // replicas × hours × rate, rounded to the nearest micro-dollar.
        let amount =
            ((c.replicas as i128 * hours_milli as i128 * c.micros_per_replica_hour as i128
                + 1_800_000)
                / 3_600_000) as i64;
        let now = created_ms();
        let id = new_id("depchg");
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO deployment_charges (id, tenant_id, deployment_id, period_start_ms, \
             period_end_ms, replicas, micros_per_replica_hour, amount_micros, paid_micros, \
             short_micros, created_ms, price_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&d.tenant_id)
        .bind(&d.id)
        .bind(c.period_start_ms)
        .bind(c.period_end_ms)
        .bind(c.replicas)
        .bind(c.micros_per_replica_hour)
        .bind(amount)
        .bind(now)
        .bind(c.price_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(Charged::Duplicate);
        }
        let (mut paid, mut short) = (0, 0);
        let account = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(&d.tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(account) = account {
            let balance: i64 = account.try_get("balance_micros")?;
            let reserved: i64 = account.try_get("reserved_micros")?;
            paid = amount.min((balance - reserved).max(0));
            if paid > 0 {
                sqlx::query(
                    "UPDATE credit_accounts SET balance_micros = balance_micros - $1, \
                     updated_ms = $2 WHERE tenant_id = $3",
                )
                .bind(paid)
                .bind(now)
                .bind(&d.tenant_id)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO credit_ledger (id, tenant_id, kind, amount_micros, request_id, \
                     note, actor, charge_id, created_ms) \
                     VALUES ($1, $2, 'deployment', $3, NULL, $4, 'system', $5, $6)",
                )
                .bind(new_id("cred"))
                .bind(&d.tenant_id)
                .bind(-paid)
                .bind(format!(
                    "Deployment '{}': {} replica(s) for {:.3} h",
                    d.name,
                    c.replicas,
                    hours_milli as f64 / 3_600_000.0
                ))
                .bind(&id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            short = amount - paid;
            sqlx::query(
                "UPDATE deployment_charges SET paid_micros = $1, short_micros = $2 WHERE id = $3",
            )
            .bind(paid)
            .bind(short)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("UPDATE deployments SET billed_until_ms = $1 WHERE id = $2")
            .bind(c.period_end_ms)
            .bind(&d.id)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(Charged::Charged(Charge {
            id,
            deployment_id: d.id.clone(),
            period_start_ms: c.period_start_ms,
            period_end_ms: c.period_end_ms,
            replicas: c.replicas,
            micros_per_replica_hour: c.micros_per_replica_hour,
            amount: Money::from_micros(amount),
            paid: Money::from_micros(paid),
            short: Money::from_micros(short),
        }))
    }

    /// The capacity price of `hardware` in force at `at_ms`, if the catalog has one.
    pub async fn capacity_price_at(
        &self,
        hardware: &str,
        at_ms: i64,
    ) -> StoreResult<Option<CapacityPrice>> {
        let row = sqlx::query(&format!(
            "SELECT {PRICE_COLUMNS} FROM capacity_prices WHERE hardware = $1 \
             AND effective_ms <= $2 ORDER BY effective_ms DESC LIMIT 1"
        ))
        .bind(hardware)
        .bind(at_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(price_from_row).transpose()
    }

    /// Seeds `hardware`'s price effective from time 0 when it has none (replicas race safely).
    pub async fn seed_capacity_price(&self, hardware: &str, micros: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO capacity_prices (id, hardware, micros_per_replica_hour, effective_ms, \
             created_ms, created_by) VALUES ($1, $2, $3, 0, $4, 'config') ON CONFLICT DO NOTHING",
        )
        .bind(new_id("capprice"))
        .bind(hardware)
        .bind(micros)
        .bind(created_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Adds a capacity price effective from `effective_ms`; a second row for the same hardware
    /// and time is a Conflict.
    pub async fn add_capacity_price(
        &self,
        hardware: &str,
        micros: i64,
        effective_ms: i64,
        created_by: &str,
    ) -> StoreResult<CapacityPrice> {
        let price = CapacityPrice {
            id: new_id("capprice"),
            hardware: hardware.to_owned(),
            micros_per_replica_hour: micros,
            effective_ms,
            created_ms: created_ms(),
            created_by: created_by.to_owned(),
        };
        let inserted = sqlx::query(
            "INSERT INTO capacity_prices (id, hardware, micros_per_replica_hour, effective_ms, \
             created_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&price.id)
        .bind(&price.hardware)
        .bind(price.micros_per_replica_hour)
        .bind(price.effective_ms)
        .bind(price.created_ms)
        .bind(&price.created_by)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "Hardware '{hardware}' already has a capacity price effective from that time."
            )));
        }
        Ok(price)
    }

    /// The whole capacity catalog, by hardware then effective time.
    pub async fn capacity_prices(&self) -> StoreResult<Vec<CapacityPrice>> {
        sqlx::query(&format!(
            "SELECT {PRICE_COLUMNS} FROM capacity_prices ORDER BY hardware, effective_ms"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(price_from_row)
        .collect()
    }

    /// A deployment's charges, oldest first.
    pub async fn deployment_charges(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> StoreResult<Vec<Charge>> {
        sqlx::query(
            "SELECT id, deployment_id, period_start_ms, period_end_ms, replicas, \
             micros_per_replica_hour, amount_micros, paid_micros, short_micros \
             FROM deployment_charges \
             WHERE tenant_id = $1 AND deployment_id = $2 ORDER BY period_start_ms, id",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(Charge {
                id: row.try_get("id")?,
                deployment_id: row.try_get("deployment_id")?,
                period_start_ms: row.try_get("period_start_ms")?,
                period_end_ms: row.try_get("period_end_ms")?,
                replicas: row.try_get("replicas")?,
                micros_per_replica_hour: row.try_get("micros_per_replica_hour")?,
                amount: Money::from_micros(row.try_get("amount_micros")?),
                paid: Money::from_micros(row.try_get("paid_micros")?),
                short: Money::from_micros(row.try_get("short_micros")?),
            })
        })
        .collect()
    }
}
