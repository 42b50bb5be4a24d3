//! The dated price catalog: per model, rows of prices each effective from a time on. Rows are
//! only ever inserted; the price of a request is the row of its model with the latest
//! `effective_ms` not after the request's start.

use sqlx::Row as _;

use super::{created_ms, is_unique_violation, Row, Store, StoreError, StoreResult};
use crate::money::Prices;
use crate::secret::new_id;

/// The one currency of the ledger (`Money` is micro-USD).
pub const CURRENCY: &str = "usd";

/// One catalog row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPrice {
    pub id: String,
    /// Lower-cased model name.
    pub model: String,
    pub currency: String,
    pub prices: Prices,
    pub effective_ms: i64,
    pub created_ms: i64,
    /// `config` (seeded) or `operator:<name>`.
    pub created_by: String,
}

const COLUMNS: &str = "id, model, currency, input_micros_per_million, \
     cached_input_micros_per_million, output_micros_per_million, effective_ms, created_ms, \
     created_by";

fn from_row(row: &Row) -> StoreResult<CatalogPrice> {
    Ok(CatalogPrice {
        id: row.try_get("id")?,
        model: row.try_get("model")?,
        currency: row.try_get("currency")?,
        prices: Prices {
            input_micros_per_million: row.try_get("input_micros_per_million")?,
            cached_input_micros_per_million: row.try_get("cached_input_micros_per_million")?,
            output_micros_per_million: row.try_get("output_micros_per_million")?,
        },
        effective_ms: row.try_get("effective_ms")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
    })
}

impl Store {
    /// The price of `model` effective at `at_ms`, if the catalog has one, with the time the
    /// model's next price takes effect when the catalog has a later one (for caches of the
    /// current price).
    pub async fn price_window_at(
        &self,
        model: &str,
        at_ms: i64,
    ) -> StoreResult<Option<(CatalogPrice, Option<i64>)>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, (SELECT MIN(n.effective_ms) FROM model_prices n \
             WHERE n.model = $1 AND n.effective_ms > $2) AS next_ms \
             FROM model_prices WHERE model = $1 AND effective_ms <= $2 \
             ORDER BY effective_ms DESC LIMIT 1"
        ))
        .bind(model.to_lowercase())
        .bind(at_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(|row| Ok((from_row(row)?, row.try_get("next_ms")?)))
            .transpose()
    }

    /// One catalog row by id.
    pub async fn price_by_id(&self, id: &str) -> StoreResult<Option<CatalogPrice>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM model_prices WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Adds a price effective from `effective_ms`. A second row for the same model and time is
    /// a conflict.
    pub async fn add_price(
        &self,
        model: &str,
        prices: Prices,
        effective_ms: i64,
        created_by: &str,
    ) -> StoreResult<CatalogPrice> {
        let price = CatalogPrice {
            id: new_id("price"),
            model: model.to_lowercase(),
            currency: CURRENCY.to_owned(),
            prices,
            effective_ms,
            created_ms: created_ms(),
            created_by: created_by.to_owned(),
        };
        insert(self, &price).await.map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "Model '{}' already has a price effective from that time.",
                price.model
            )),
            other => StoreError::Database(other),
        })?;
        Ok(price)
    }

    /// Seeds the catalog with `prices` for `model`, effective since the beginning (time 0),
    /// when the model has no such row yet; later rows are untouched. Concurrent seeds of
    /// several replicas keep one row.
    pub async fn seed_price(&self, model: &str, prices: Prices) -> StoreResult<()> {
        let exists =
            sqlx::query("SELECT id FROM model_prices WHERE model = $1 AND effective_ms = 0")
                .bind(model.to_lowercase())
                .fetch_optional(self.pool())
                .await?
                .is_some();
        if exists {
            return Ok(());
        }
        let price = CatalogPrice {
            id: new_id("price"),
            model: model.to_lowercase(),
            currency: CURRENCY.to_owned(),
            prices,
            effective_ms: 0,
            created_ms: created_ms(),
            created_by: "config".to_owned(),
        };
        match insert(self, &price).await {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The whole catalog (optionally one model's rows), by model then effective time.
    pub async fn prices(&self, model: Option<&str>) -> StoreResult<Vec<CatalogPrice>> {
        let rows = match model {
            Some(model) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM model_prices WHERE model = $1 \
                     ORDER BY model, effective_ms"
                ))
                .bind(model.to_lowercase())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM model_prices ORDER BY model, effective_ms"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}

async fn insert(store: &Store, p: &CatalogPrice) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO model_prices (id, model, currency, input_micros_per_million, \
         cached_input_micros_per_million, output_micros_per_million, effective_ms, created_ms, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&p.id)
    .bind(&p.model)
    .bind(&p.currency)
    .bind(p.prices.input_micros_per_million)
    .bind(p.prices.cached_input_micros_per_million)
    .bind(p.prices.output_micros_per_million)
    .bind(p.effective_ms)
    .bind(p.created_ms)
    .bind(&p.created_by)
    .execute(store.pool())
    .await?;
    Ok(())
}
