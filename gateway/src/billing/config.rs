//! The `[billing]` table of the configuration file, with `STARFIRE_*` overrides.
//!
//! ```toml
//! [billing]
//! invoice_grace_secs = 3600        # a month's invoice is finalized this long after it ends
//!
//! [billing.operator_tokens]        # the platform's billing operators, by name
//! alice = "a long random secret"
//!
//! [billing.stripe]                  # optional: without it, billing runs from the ledger alone
//! secret_key = "sk_live_..."
//! webhook_secrets = ["whsec_..."]   # every secret in use (two while one is rotated)
//! api_base = "https://api.stripe.com/"
//! meter_event_name = "starfire_usage"
//! meter_interval_secs = 60
//! min_top_up_micros = 5000000       # $5
//! max_top_up_micros = 10000000000   # $10,000
//! ```
//!
//! | field | env | default |
//! |---|---|---|
//! | `operator_tokens` | `STARFIRE_BILLING_OPERATOR_TOKEN` (one token, named `operator`) | none: the `/v1/billing/admin/*` routes answer 403 |
//! | `invoice_grace_secs` | `STARFIRE_INVOICE_GRACE_SECS` | `3600` (at least twice `metering.orphan_after_secs`, so that no request of the period is still open) |
//! | `stripe.secret_key` | `STARFIRE_STRIPE_SECRET_KEY` | none: no top-ups, no meter events |
//! | `stripe.webhook_secrets` | `STARFIRE_STRIPE_WEBHOOK_SECRET` (comma-separated) | none: the webhook answers 503 |
//! | `stripe.api_base` | `STARFIRE_STRIPE_API_BASE` | `https://api.stripe.com/` |
//! | `stripe.meter_event_name` | | `starfire_usage` |
//! | `stripe.meter_interval_secs` | `STARFIRE_STRIPE_METER_INTERVAL_SECS` | `60` |
//! | `stripe.min_top_up_micros`, `stripe.max_top_up_micros` | | `5000000`, `10000000000` |
//!
//! Operator tokens are the platform operator's credential (prices, adjustments, refunds,
//! finalizing invoices), distinct from an organization's own admin keys: an organization's
//! owner can read its billing but never credit itself. Tokens are compared in constant time
//! and never logged; the ledger records the operator's name.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Billing settings.
#[derive(Clone, PartialEq, Default)]
pub struct BillingConfig {
    /// Operator name → bearer token for the `/v1/billing/admin/*` routes.
    pub operator_tokens: BTreeMap<String, String>,
    /// Seconds after a month's end before its invoices are finalized.
    pub invoice_grace_secs: u64,
    /// Stripe, when configured.
    pub stripe: StripeConfig,
}

/// The `[billing.stripe]` table, resolved.
#[derive(Clone, PartialEq)]
pub struct StripeConfig {
    /// The API secret key; `None`: Stripe is not used (no top-ups, no meter events).
    pub secret_key: Option<String>,
    /// Every webhook signing secret accepted (more than one while a secret is rotated).
    pub webhook_secrets: Vec<String>,
    /// Where the Stripe API is (a test points it at a local fake).
    pub api_base: String,
    /// The Billing Meter's event name; its value is a request's cost in micro-USD.
    pub meter_event_name: String,
    /// How often the reporter sends the meter events owed.
    pub meter_interval_secs: u64,
    /// The smallest and largest top-up accepted.
    pub min_top_up_micros: i64,
    pub max_top_up_micros: i64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            secret_key: None,
            webhook_secrets: Vec::new(),
            api_base: "https://api.stripe.com/".to_owned(),
            meter_event_name: "starfire_usage".to_owned(),
            meter_interval_secs: 60,
            min_top_up_micros: 5_000_000,
            max_top_up_micros: 10_000_000_000,
        }
    }
}

impl std::fmt::Debug for StripeConfig {
    // Hand-written so that secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("api_base", &self.api_base)
            .field("meter_event_name", &self.meter_event_name)
            .field("meter_interval_secs", &self.meter_interval_secs)
            .finish()
    }
}

/// The `[billing.stripe]` table as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeFile {
    secret_key: Option<String>,
    #[serde(default)]
    webhook_secrets: Vec<String>,
    api_base: Option<String>,
    meter_event_name: Option<String>,
    meter_interval_secs: Option<u64>,
    min_top_up_micros: Option<i64>,
    max_top_up_micros: Option<i64>,
}

impl StripeConfig {
    fn resolve(
        file: Option<StripeFile>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<StripeConfig, (String, String)> {
        let file = file.unwrap_or_default();
        let d = StripeConfig::default();
        let secret_key = env("STARFIRE_STRIPE_SECRET_KEY")
            .or(file.secret_key)
            .filter(|k| !k.is_empty());
        let webhook_secrets = match env("STARFIRE_STRIPE_WEBHOOK_SECRET") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.webhook_secrets,
        };
        if webhook_secrets.iter().any(|s| s.len() < 16) {
            return Err((
                "billing.stripe.webhook_secrets".into(),
                "every webhook secret must be at least 16 characters".into(),
            ));
        }
        let api_base = env("STARFIRE_STRIPE_API_BASE")
            .or(file.api_base)
            .unwrap_or(d.api_base);
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err((
                "billing.stripe.api_base".into(),
                format!("'{api_base}' is not an http(s) URL"),
            ));
        }
        let meter_event_name = file.meter_event_name.unwrap_or(d.meter_event_name);
        if meter_event_name.is_empty() || meter_event_name.len() > 100 {
            return Err((
                "billing.stripe.meter_event_name".into(),
                "must be 1 to 100 characters".into(),
            ));
        }
        let meter_interval_secs = match env("STARFIRE_STRIPE_METER_INTERVAL_SECS") {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                (
                    "STARFIRE_STRIPE_METER_INTERVAL_SECS".to_owned(),
                    format!("'{v}' is not a non-negative integer"),
                )
            })?,
            None => file.meter_interval_secs.unwrap_or(d.meter_interval_secs),
        }
        .max(1);
        let min_top_up_micros = file.min_top_up_micros.unwrap_or(d.min_top_up_micros);
        let max_top_up_micros = file.max_top_up_micros.unwrap_or(d.max_top_up_micros);
        // Stripe charges whole cents, at least $0.50.
        if min_top_up_micros < 500_000
            || max_top_up_micros < min_top_up_micros
            || min_top_up_micros % 10_000 != 0
            || max_top_up_micros % 10_000 != 0
        {
            return Err((
                "billing.stripe.min_top_up_micros".into(),
                "top-up bounds must be whole cents, at least 500000 ($0.50), min <= max".into(),
            ));
        }
        Ok(StripeConfig {
            secret_key,
            webhook_secrets,
            api_base,
            meter_event_name,
            meter_interval_secs,
            min_top_up_micros,
            max_top_up_micros,
        })
    }
}

impl std::fmt::Debug for BillingConfig {
    // Hand-written so that tokens never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingConfig")
            .field(
                "operators",
                &self.operator_tokens.keys().collect::<Vec<_>>(),
            )
            .field("invoice_grace_secs", &self.invoice_grace_secs)
            .field("stripe", &self.stripe)
            .finish()
    }
}

/// The `[billing]` table as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingFile {
    #[serde(default)]
    operator_tokens: BTreeMap<String, String>,
    invoice_grace_secs: Option<u64>,
    stripe: Option<StripeFile>,
}

/// Shortest accepted operator token: it guards money.
const MIN_TOKEN_LEN: usize = 24;

impl BillingConfig {
    /// Defaults, then the file's table, then the environment. Errors name the field.
    pub fn resolve(
        file: Option<BillingFile>,
        orphan_after_secs: u64,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<BillingConfig, (String, String)> {
        let file = file.unwrap_or_default();
        let mut operator_tokens = file.operator_tokens;
        if let Some(token) = env("STARFIRE_BILLING_OPERATOR_TOKEN").filter(|t| !t.is_empty()) {
            operator_tokens.insert("operator".to_owned(), token);
        }
        for (name, token) in &operator_tokens {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                return Err((
                    "billing.operator_tokens".into(),
                    format!("'{name}' is not a plain name (letters, digits, - _ . @)"),
                ));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err((
                    format!("billing.operator_tokens.{name}"),
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
        }
        let invoice_grace_secs = match env("STARFIRE_INVOICE_GRACE_SECS") {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                (
                    "STARFIRE_INVOICE_GRACE_SECS".to_owned(),
                    format!("'{v}' is not a non-negative integer"),
                )
            })?,
            None => file.invoice_grace_secs.unwrap_or(3600),
        };
        if invoice_grace_secs < 2 * orphan_after_secs {
            return Err((
                "invoice_grace_secs".into(),
                "must be at least twice metering.orphan_after_secs (requests of the period \
                 could still be open)"
                    .into(),
            ));
        }
        Ok(BillingConfig {
            operator_tokens,
            invoice_grace_secs,
            stripe: StripeConfig::resolve(file.stripe, env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_tokens_come_from_file_and_env_and_must_be_long() {
        let file: BillingFile =
            toml::from_str("[operator_tokens]\nalice = \"0123456789abcdef0123456789\"\n").unwrap();
        let c = BillingConfig::resolve(Some(file), 60, &|n| {
            (n == "STARFIRE_BILLING_OPERATOR_TOKEN").then(|| "z".repeat(30))
        })
        .unwrap();
        assert_eq!(c.operator_tokens.len(), 2);
        assert_eq!(c.operator_tokens["operator"], "z".repeat(30));
        assert_eq!(c.invoice_grace_secs, 3600);
        assert!(!format!("{c:?}").contains("0123456789"));
        let short: BillingFile = toml::from_str("[operator_tokens]\nbob = \"short\"\n").unwrap();
        let err = BillingConfig::resolve(Some(short), 60, &|_| None).unwrap_err();
        assert_eq!(err.0, "billing.operator_tokens.bob");
        let err = BillingConfig::resolve(None, 60, &|n| {
            (n == "STARFIRE_INVOICE_GRACE_SECS").then(|| "10".to_owned())
        })
        .unwrap_err();
        assert_eq!(err.0, "invoice_grace_secs");
    }

    #[test]
    fn stripe_comes_from_file_and_env_and_is_checked() {
        let file: BillingFile = toml::from_str(
            "[stripe]\nsecret_key = \"sk_test_file\"\nwebhook_secrets = [\"whsec_0123456789abcdef\"]\n\
             min_top_up_micros = 1000000\n",
        )
        .unwrap();
        let c = BillingConfig::resolve(Some(file), 60, &|n| match n {
            "STARFIRE_STRIPE_SECRET_KEY" => Some("sk_test_env".into()),
            "STARFIRE_STRIPE_API_BASE" => Some("http://127.0.0.1:12111/".into()),
            _ => None,
        })
        .unwrap();
        let s = &c.stripe;
        assert_eq!(s.secret_key.as_deref(), Some("sk_test_env"));
        assert_eq!(s.webhook_secrets, ["whsec_0123456789abcdef"]);
        assert_eq!(s.api_base, "http://127.0.0.1:12111/");
        assert_eq!(
            (s.min_top_up_micros, s.max_top_up_micros),
            (1_000_000, 10_000_000_000)
        );
        assert_eq!(s.meter_event_name, "starfire_usage");
        // Secrets never reach a log line.
        let logged = format!("{c:?}");
        assert!(
            !logged.contains("sk_test_env") && !logged.contains("whsec_"),
            "{logged}"
        );
        // Rotation through the environment: comma-separated.
        let c = BillingConfig::resolve(None, 60, &|n| {
            (n == "STARFIRE_STRIPE_WEBHOOK_SECRET")
                .then(|| "whsec_new_0123456789, whsec_old_0123456789".into())
        })
        .unwrap();
        assert_eq!(c.stripe.webhook_secrets.len(), 2);
        assert!(c.stripe.secret_key.is_none());
        for (toml, field) in [
            (
                "[stripe]\nwebhook_secrets = [\"short\"]\n",
                "billing.stripe.webhook_secrets",
            ),
            (
                "[stripe]\napi_base = \"ftp://x\"\n",
                "billing.stripe.api_base",
            ),
            (
                "[stripe]\nmin_top_up_micros = 1\n",
                "billing.stripe.min_top_up_micros",
            ),
        ] {
            let file: BillingFile = toml::from_str(toml).unwrap();
            let err = BillingConfig::resolve(Some(file), 60, &|_| None).unwrap_err();
            assert_eq!(err.0, field);
        }
    }
}
