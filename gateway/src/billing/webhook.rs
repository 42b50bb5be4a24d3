//! Stripe webhooks: the signature check and what each event means to the ledger.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,...` where each `v1` is
//! HMAC-SHA256 over `<t>.<raw body>` with an endpoint secret. An event is accepted when any
//! configured secret (two while one is rotated) matches any `v1` value, compared in constant
//! time, and `t` is within [`TOLERANCE_SECS`] of now (a replayed old delivery is refused).
//!
//! Events applied (each once, by event id, in the transaction that applies it:
//! `store::stripe`):
//! - `checkout.session.completed` and `checkout.session.async_payment_succeeded` with
//!   `payment_status` `paid`: the top-up named in the session's metadata is credited (once per
//!   session, whatever the number of events), and a free organization becomes pay-as-you-go.
//! - `checkout.session.expired` and `checkout.session.async_payment_failed`: the top-up is
//!   marked expired.
//! - `invoice.paid` / `invoice.payment_failed`: the Stripe invoice of a postpaid organization
//!   is recorded, and the organization's standing becomes `ok` / `past_due` (the newer event
//!   wins when they arrive out of order).
//!
//! Anything else is acknowledged and recorded as ignored.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::metering::money::Money;
use crate::store::stripe::{EventAction, StripeEventRecord};

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl SignatureError {
    pub fn message(&self) -> &'static str {
        match self {
            SignatureError::Missing => "The Stripe-Signature header is missing.",
            SignatureError::Malformed => {
                "The Stripe-Signature header must be 't=<timestamp>,v1=<signature>'."
            }
            SignatureError::Stale => {
                "The Stripe-Signature timestamp is outside the tolerance (300 seconds)."
            }
            SignatureError::Mismatch => {
                "No Stripe-Signature v1 value matches the payload for any configured webhook secret."
            }
        }
    }
}

/// The `v1` signature of `payload` at `timestamp` under `secret`, lowercase hex.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    crate::auth::secret::hex(&mac.finalize().into_bytes())
}

/// Checks a delivery's `Stripe-Signature` header against every secret.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[String],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => signatures.push(value),
            // `v0` (test-mode legacy) and future schemes are not accepted.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: `now - t` overflows for a `t` near i64::MIN (and `abs` of i64::MIN is
    // itself again), which let `t = now - 2^63` pass as fresh.
    if now_secs.abs_diff(timestamp) > TOLERANCE_SECS as u64 {
        return Err(SignatureError::Stale);
    }
    // Every secret against every signature, without stopping early: the time taken says
    // nothing about which (if any) matched.
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = sign(secret, timestamp, payload);
        for given in &signatures {
            if given.len() == expected.len() {
                matched |= expected.as_bytes().ct_eq(given.as_bytes());
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A verified event, read.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub created_ms: i64,
    pub action: EventAction,
}

impl Event {
    pub fn record(&self) -> StripeEventRecord<'_> {
        StripeEventRecord {
            id: &self.id,
            kind: &self.kind,
            created_ms: self.created_ms,
        }
    }
}

/// Reads a verified payload. `Err` only for a body that is not a Stripe event at all.
pub fn parse(payload: &[u8]) -> Result<Event, String> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("the body is not JSON: {e}"))?;
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or("the event has no id")?
        .to_owned();
    let kind = v["type"]
        .as_str()
        .filter(|s| s.len() <= 255)
        .ok_or("the event has no type")?
        .to_owned();
    let created_ms = v["created"].as_i64().unwrap_or(0).saturating_mul(1000);
    let object = &v["data"]["object"];
    let action = match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            paid_session(object)
        }
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            match object["id"].as_str() {
                Some(session) => EventAction::ExpireTopUp {
                    session_id: session.to_owned(),
                },
                None => EventAction::Ignore("the session has no id".into()),
            }
        }
        "invoice.paid" | "invoice.payment_failed" => invoice(object, kind == "invoice.paid"),
        other => EventAction::Ignore(format!("'{other}' is not acted on")),
    };
    Ok(Event {
        id,
        kind,
        created_ms,
        action,
    })
}

fn paid_session(session: &Value) -> EventAction {
    let Some(session_id) = session["id"].as_str() else {
        return EventAction::Ignore("the session has no id".into());
    };
    let metadata = &session["metadata"];
    let (Some(top_up), Some(tenant)) = (
        metadata["starfire_top_up"]
            .as_str()
            .or(session["client_reference_id"].as_str()),
        metadata["starfire_organization"].as_str(),
    ) else {
        return EventAction::Ignore("the session is not a Starfire top-up".into());
    };
    if session["payment_status"].as_str() != Some("paid") {
        // `unpaid` with a delayed payment method: `async_payment_succeeded` follows.
        return EventAction::Ignore("the session is not paid yet".into());
    }
    if session["currency"].as_str() != Some("usd") {
        return EventAction::Ignore("the session is not in USD".into());
    }
    let Some(cents) = session["amount_total"].as_i64().filter(|c| *c > 0) else {
        return EventAction::Ignore("the session has no amount".into());
    };
    EventAction::CompleteTopUp {
        top_up_id: top_up.to_owned(),
        tenant_id: tenant.to_owned(),
        session_id: session_id.to_owned(),
        amount: Money::from_micros(cents.saturating_mul(10_000)),
    }
}

fn invoice(invoice: &Value, paid: bool) -> EventAction {
    let (Some(id), Some(customer)) = (
        invoice["id"].as_str(),
        // `customer` is an id, or the object when expanded.
        invoice["customer"]
            .as_str()
            .or(invoice["customer"]["id"].as_str()),
    ) else {
        return EventAction::Ignore("the invoice has no id or customer".into());
    };
    EventAction::Invoice {
        customer_id: customer.to_owned(),
        invoice_id: id.to_owned(),
        paid,
        status: invoice["status"]
            .as_str()
            .unwrap_or(if paid { "paid" } else { "open" })
            .to_owned(),
        amount_due_cents: invoice["amount_due"].as_i64().unwrap_or(0),
        amount_paid_cents: invoice["amount_paid"].as_i64().unwrap_or(0),
        currency: invoice["currency"].as_str().unwrap_or("usd").to_owned(),
        hosted_url: invoice["hosted_invoice_url"].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_0123456789abcdef";

    fn header(secret: &str, t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", sign(secret, t, body))
    }

    #[test]
    fn signatures_are_checked_with_tolerance_and_rotation() {
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_800_000_000;
        let secrets = vec![SECRET.to_owned()];
        assert_eq!(
            verify(Some(&header(SECRET, now, body)), body, &secrets, now),
            Ok(())
        );
        // Tampered body, wrong secret, stale and future timestamps, no header, garbage.
        let tampered = br#"{"id":"evt_2","type":"invoice.paid"}"#;
        assert_eq!(
            verify(Some(&header(SECRET, now, body)), tampered, &secrets, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                Some(&header("whsec_other_0123456789", now, body)),
                body,
                &secrets,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header(SECRET, now - 301, body)), body, &secrets, now),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header(SECRET, now + 301, body)), body, &secrets, now),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header(SECRET, now - 300, body)), body, &secrets, now),
            Ok(())
        );
        assert_eq!(
            verify(None, body, &secrets, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=abc"), body, &secrets, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("t=x,v1=abc"), body, &secrets, now),
            Err(SignatureError::Malformed)
        );
        // Rotation: the header carries one signature per active secret, and any configured
        // secret may match any of them.
        let old = "whsec_old_0123456789abcdef";
        let both = format!("{},v1={}", header(old, now, body), sign(SECRET, now, body));
        assert_eq!(verify(Some(&both), body, &secrets, now), Ok(()));
        let rotated = vec!["whsec_new_0123456789abcdef".to_owned(), old.to_owned()];
        assert_eq!(
            verify(Some(&header(old, now, body)), body, &rotated, now),
            Ok(())
        );
        // No secrets: nothing verifies.
        assert_eq!(
            verify(Some(&header(SECRET, now, body)), body, &[], now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_800_000_000;
        let secrets = vec![SECRET.to_owned()];
        // `now - t` is exactly 2^63 for the first: it used to wrap to i64::MIN and pass.
        for t in [now + i64::MIN, i64::MIN, i64::MAX, now - (1 << 62)] {
            assert_eq!(
                verify(Some(&header(SECRET, t, body)), body, &secrets, now),
                Err(SignatureError::Stale),
                "t={t}"
            );
        }
    }

    #[test]
    fn events_become_actions() {
        let completed = br#"{"id":"evt_1","type":"checkout.session.completed","created":1800000000,
            "data":{"object":{"id":"cs_1","payment_status":"paid","currency":"usd","amount_total":2500,
            "client_reference_id":"topup_1","metadata":{"starfire_top_up":"topup_1","starfire_organization":"org_1"}}}}"#;
        let event = parse(completed).unwrap();
        assert_eq!(event.created_ms, 1_800_000_000_000);
        match event.action {
            EventAction::CompleteTopUp {
                top_up_id,
                tenant_id,
                session_id,
                amount,
            } => {
                assert_eq!(
                    (top_up_id.as_str(), tenant_id.as_str()),
                    ("topup_1", "org_1")
                );
                assert_eq!(session_id, "cs_1");
                assert_eq!(amount.micros(), 25_000_000);
            }
            other => panic!("{other:?}"),
        }
        let unpaid = br#"{"id":"evt_2","type":"checkout.session.completed","created":1,
            "data":{"object":{"id":"cs_1","payment_status":"unpaid","currency":"usd","amount_total":2500,
            "metadata":{"starfire_top_up":"topup_1","starfire_organization":"org_1"}}}}"#;
        assert!(matches!(
            parse(unpaid).unwrap().action,
            EventAction::Ignore(_)
        ));
        let failed = br#"{"id":"evt_3","type":"invoice.payment_failed","created":5,
            "data":{"object":{"id":"in_1","customer":"cus_1","status":"open","amount_due":900,"amount_paid":0,"currency":"usd"}}}"#;
        match parse(failed).unwrap().action {
            EventAction::Invoice {
                paid, customer_id, ..
            } => {
                assert!(!paid);
                assert_eq!(customer_id, "cus_1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(br#"{"id":"evt_4","type":"customer.created","data":{"object":{}}}"#)
                .unwrap()
                .action,
            EventAction::Ignore(_)
        ));
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"type":"x"}"#).is_err());
    }
}
