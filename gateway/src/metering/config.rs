//! The `[metering]` table of the configuration file, with `STARFIRE_*` overrides.
//!
//! ```toml
//! [metering]
//! free_grant_micros = 5000000        # credits a free-plan organization starts with ($5)
//! heartbeat_secs = 10                # how often in-flight usage rows are refreshed
//! orphan_after_secs = 60             # a row not refreshed for this long is an orphan
//!
//! [metering.prices."smollm2-135m-instruct"]
//! input_micros_per_million = 50000
//! cached_input_micros_per_million = 25000
//! output_micros_per_million = 100000
//! ```
//!
//! | field | env | default |
//! |---|---|---|
//! | `free_grant_micros` | `STARFIRE_FREE_GRANT_MICROS` | `5000000` ($5) |
//! | `heartbeat_secs` | `STARFIRE_USAGE_HEARTBEAT_SECS` | `10` |
//! | `orphan_after_secs` | `STARFIRE_USAGE_ORPHAN_AFTER_SECS` | `60` |
//! | `prices` | — | the default model at [`Prices::DEFAULT`]; a model without a price is billed at the default model's |

use std::collections::BTreeMap;

use serde::Deserialize;

use super::money::{Money, Prices};

/// Metering and budget settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MeteringConfig {
    /// Credits a free-plan organization gets when it is created (and free organizations that
    /// predate metering on their first request).
    pub free_grant: Money,
    /// Seconds between refreshes of this instance's in-flight usage rows (heartbeat and
    /// tokens generated so far).
    pub heartbeat_secs: u64,
    /// An in-flight row whose heartbeat is older than this is closed as `interrupted`.
    pub orphan_after_secs: u64,
    /// Prices by model name (lower-cased).
    prices: BTreeMap<String, Prices>,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            free_grant: Money::from_micros(5_000_000),
            heartbeat_secs: 10,
            orphan_after_secs: 60,
            prices: BTreeMap::new(),
        }
    }
}

/// The `[metering]` table as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteringFile {
    free_grant_micros: Option<i64>,
    heartbeat_secs: Option<u64>,
    orphan_after_secs: Option<u64>,
    #[serde(default)]
    prices: BTreeMap<String, Prices>,
}

impl MeteringConfig {
    /// Defaults, then the file's table, then the environment. Errors name the field.
    pub fn resolve(
        file: Option<MeteringFile>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<MeteringConfig, (String, String)> {
        let file = file.unwrap_or_default();
        let mut config = MeteringConfig::default();
        let number = |name: &str| -> Result<Option<i64>, (String, String)> {
            env(name)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| {
                            (
                                name.to_owned(),
                                format!("'{v}' is not a non-negative integer"),
                            )
                        })
                })
                .transpose()
        };
        if let Some(grant) = number("STARFIRE_FREE_GRANT_MICROS")?.or(file.free_grant_micros) {
            if grant < 0 {
                return Err(("free_grant_micros".into(), "must not be negative".into()));
            }
            config.free_grant = Money::from_micros(grant);
        }
        if let Some(secs) = number("STARFIRE_USAGE_HEARTBEAT_SECS")?
            .map(|n| n as u64)
            .or(file.heartbeat_secs)
        {
            config.heartbeat_secs = secs.max(1);
        }
        if let Some(secs) = number("STARFIRE_USAGE_ORPHAN_AFTER_SECS")?
            .map(|n| n as u64)
            .or(file.orphan_after_secs)
        {
            config.orphan_after_secs = secs;
        }
        if config.orphan_after_secs < 2 * config.heartbeat_secs {
            return Err((
                "orphan_after_secs".into(),
                "must be at least twice heartbeat_secs (a live row would look orphaned)".into(),
            ));
        }
        for (model, prices) in file.prices {
            prices
                .validate()
                .map_err(|e| (format!("metering.prices.\"{model}\""), e))?;
            config.prices.insert(model.to_lowercase(), prices);
        }
        Ok(config)
    }

    /// Sets the price of `model` (tests and embedders; the file is the usual way).
    pub fn set_price(&mut self, model: &str, prices: Prices) {
        self.prices.insert(model.to_lowercase(), prices);
    }

    /// The configured prices (lower-cased model names).
    pub fn configured_prices(&self) -> impl Iterator<Item = (&str, Prices)> {
        self.prices.iter().map(|(m, p)| (m.as_str(), *p))
    }

    /// The configured price of a model: its own, else the default model's, else
    /// [`Prices::DEFAULT`]. Requests are priced from the dated catalog
    /// (`billing::catalog::price_at`), which this seeds.
    pub fn price(&self, model: &str) -> Prices {
        let default = crate::registry::DEFAULT_MODEL_ID.to_lowercase();
        self.prices
            .get(&model.to_lowercase())
            .or_else(|| self.prices.get(&default))
            .copied()
            .unwrap_or(Prices::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_come_from_the_file_and_fall_back_to_the_default_model() {
        let file: MeteringFile = toml::from_str(
            "free_grant_micros = 7\n[prices.\"Big\"]\ninput_micros_per_million = 1\n\
             cached_input_micros_per_million = 2\noutput_micros_per_million = 3\n",
        )
        .unwrap();
        let c = MeteringConfig::resolve(Some(file), &|_| None).unwrap();
        assert_eq!(c.free_grant, Money::from_micros(7));
        assert_eq!(c.price("big").output_micros_per_million, 3);
        assert_eq!(c.price("other"), Prices::DEFAULT);
        let c = MeteringConfig::resolve(None, &|n| {
            (n == "STARFIRE_FREE_GRANT_MICROS").then(|| "12".to_owned())
        })
        .unwrap();
        assert_eq!(c.free_grant.micros(), 12);
        let err = MeteringConfig::resolve(None, &|n| {
            (n == "STARFIRE_FREE_GRANT_MICROS").then(|| "-1".to_owned())
        })
        .unwrap_err();
        assert_eq!(err.0, "STARFIRE_FREE_GRANT_MICROS");
    }
}
