//! Money as integer micro-units of USD, and a model's token prices.
//!
//! Floats never hold an amount: a `Money` is an `i64` count of micro-dollars (1 USD =
//! 1,000,000), and a cost is computed in `i128` and rounded up to the next micro-dollar, so that
//! the sum of many requests' costs equals what the ledger debits.

use serde::{Deserialize, Serialize};

/// An amount in micro-units of USD. Negative for debits in the ledger.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Saturates instead of overflowing (an amount this large is an error elsewhere already).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The amount in dollars for display (`{"value": 1.25, "currency": "usd"}`); never used
    /// for arithmetic.
    pub fn as_dollars(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// What a model's tokens cost, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Uncached prompt tokens, micro-USD per 1M tokens.
    pub input_micros_per_million: i64,
    /// Prompt tokens served from the prefix cache, micro-USD per 1M tokens.
    pub cached_input_micros_per_million: i64,
    /// Generated tokens, micro-USD per 1M tokens.
    pub output_micros_per_million: i64,
}

impl Prices {
    /// The default model's price: $0.05 (input), $0.025 (cached input), $0.10 (output) per 1M
    /// tokens.
    pub const DEFAULT: Prices = Prices {
        input_micros_per_million: 50_000,
        cached_input_micros_per_million: 25_000,
        output_micros_per_million: 100_000,
    };

    /// The cost of a request's tokens; `cached` is part of `prompt`. Rounded up to the next
    /// micro-dollar.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> Money {
        let cached = cached.min(prompt);
        let scaled = (prompt - cached) as i128 * self.input_micros_per_million as i128
            + cached as i128 * self.cached_input_micros_per_million as i128
            + completion as i128 * self.output_micros_per_million as i128;
        let micros = (scaled + 999_999).div_euclid(1_000_000);
        Money(micros.clamp(0, i64::MAX as i128) as i64)
    }

    /// The most a request can cost: every prompt token uncached and every allowed output
    /// token generated. Admission reserves this.
    pub fn max_cost(&self, prompt: u64, max_completion: u64) -> Money {
        self.cost(prompt, 0, max_completion)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.input_micros_per_million < 0
            || self.cached_input_micros_per_million < 0
            || self.output_micros_per_million < 0
        {
            return Err("prices must not be negative".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_to_the_micro_dollar_and_never_use_floats() {
        let p = Prices::DEFAULT;
        // 30 prompt tokens at 0.05 micro-dollar + 12 output at 0.1 = 2.7 → 3.
        assert_eq!(p.cost(30, 0, 12), Money::from_micros(3));
        assert_eq!(p.cost(0, 0, 0), Money::ZERO);
        assert_eq!(p.cost(1_000_000, 0, 0), Money::from_micros(50_000));
        // Cached tokens are billed at the cached price.
        assert_eq!(p.cost(1_000_000, 1_000_000, 0), Money::from_micros(25_000));
        assert_eq!(p.cost(10, 50, 0), p.cost(10, 10, 0));
        assert!(p.max_cost(30, 12) >= p.cost(30, 20, 12));
        assert_eq!(Money::from_micros(-1_250_000).to_string(), "-$1.250000");
    }
}
