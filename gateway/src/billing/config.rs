//! The `[billing]` table of the configuration file, with `STARFIRE_*` overrides.
//!
//! ```toml
//! [billing]
//! invoice_grace_secs = 3600        # a month's invoice is finalized this long after it ends
//!
//! [billing.operator_tokens]        # the platform's billing operators, by name
//! alice = "a long random secret"
//! ```
//!
//! | field | env | default |
//! |---|---|---|
//! | `operator_tokens` | `STARFIRE_BILLING_OPERATOR_TOKEN` (one token, named `operator`) | none: the `/v1/billing/admin/*` routes answer 403 |
//! | `invoice_grace_secs` | `STARFIRE_INVOICE_GRACE_SECS` | `3600` (at least twice `metering.orphan_after_secs`, so that no request of the period is still open) |
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
}
