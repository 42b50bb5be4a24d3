//! The one price lookup: a request is priced at its model's catalog price effective at the
//! request's start (`store::prices`). A model the catalog does not know yet is added to it at
//! its `[metering.prices]` price (or the default model's), effective since the beginning, the
//! first time it is priced; after that only the catalog decides (changing the configured
//! price of a known model does not change its catalog price: add a price through
//! `POST /v1/billing/admin/prices`).

use crate::metering::config::MeteringConfig;
use crate::registry::DEFAULT_MODEL_ID;
use crate::store::prices::CatalogPrice;
use crate::store::{Store, StoreError, StoreResult};

/// How long after it is added a new price takes effect at the earliest: a request being
/// admitted while the price is added keeps the price it looked up.
pub const MIN_NOTICE_MS: i64 = 1_000;

/// The price of `model` at `at_ms`, seeding the catalog from the configuration when the model
/// is new to it.
pub async fn price_at(
    store: &Store,
    config: &MeteringConfig,
    model: &str,
    at_ms: i64,
) -> StoreResult<CatalogPrice> {
    if let Some(price) = store.price_at(model, at_ms).await? {
        return Ok(price);
    }
    store.seed_price(model, config.price(model)).await?;
    store
        .price_at(model, at_ms)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No price for model '{model}'.")))
}

/// Seeds the catalog with every configured price and the default model's (at start, and
/// before the catalog is listed).
pub async fn seed_configured(store: &Store, config: &MeteringConfig) -> StoreResult<()> {
    for (model, prices) in config.configured_prices() {
        store.seed_price(model, prices).await?;
    }
    store
        .seed_price(DEFAULT_MODEL_ID, config.price(DEFAULT_MODEL_ID))
        .await
}
