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
    Ok(price_window_at(store, config, model, at_ms).await?.0)
}

/// [`price_at`] with the time the model's next price takes effect, when the catalog has one.
async fn price_window_at(
    store: &Store,
    config: &MeteringConfig,
    model: &str,
    at_ms: i64,
) -> StoreResult<(CatalogPrice, Option<i64>)> {
    if let Some(window) = store.price_window_at(model, at_ms).await? {
        return Ok(window);
    }
    store.seed_price(model, config.price(model)).await?;
    store
        .price_window_at(model, at_ms)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No price for model '{model}'.")))
}

/// The current price of each model priced lately, so that admitting a request does not read
/// the catalog each time. An entry answers for times from its price's start up to the next
/// price the catalog held when it was read, and for at most half of [`MIN_NOTICE_MS`] after
/// that read: a price added later (by any replica) takes effect at least `MIN_NOTICE_MS`
/// after it was added, so no request is priced differently than by the catalog itself (the
/// other half covers the adding transaction's commit and the replicas' clocks).
#[derive(Debug, Default)]
pub struct PriceCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedPrice>>,
}

#[derive(Debug, Clone)]
struct CachedPrice {
    price: CatalogPrice,
    /// The first time the entry does not answer for.
    until_ms: i64,
}

/// How long an entry answers at most after it was read.
const CACHED_FOR_MS: i64 = MIN_NOTICE_MS / 2;

/// Models cached at most (a bound against requests that name many models).
const CACHED_MODELS: usize = 1024;

impl PriceCache {
    /// [`price_at`], from the cache when an entry answers for `at_ms`.
    pub async fn price_at(
        &self,
        store: &Store,
        config: &MeteringConfig,
        model: &str,
        at_ms: i64,
    ) -> StoreResult<CatalogPrice> {
        let key = model.to_lowercase();
        if let Some(hit) = self.lookup(&key, at_ms) {
            return Ok(hit);
        }
        let read_ms = crate::store::now_ms();
        let (price, next_ms) = price_window_at(store, config, model, at_ms).await?;
        let until_ms = next_ms.map_or(read_ms + CACHED_FOR_MS, |next| {
            next.min(read_ms + CACHED_FOR_MS)
        });
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHED_MODELS && !entries.contains_key(&key) {
            entries.retain(|_, e| e.until_ms > read_ms);
        }
        if entries.len() < CACHED_MODELS || entries.contains_key(&key) {
            entries.insert(
                key,
                CachedPrice {
                    price: price.clone(),
                    until_ms,
                },
            );
        }
        Ok(price)
    }

    fn lookup(&self, key: &str, at_ms: i64) -> Option<CatalogPrice> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        (e.price.effective_ms <= at_ms && at_ms < e.until_ms).then(|| e.price.clone())
    }
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
