//! Stripe, through async-stripe, where money moves; Starfire's ledger stays the source of truth.
//!
//! - A Stripe customer per organization, created on its first top-up or when it becomes
//!   enterprise, with the organization's id as idempotency key (a retry or a second replica
//!   gets the same customer) and in its metadata.
//! - Prepaid top-ups: a Checkout Session (mode `payment`, one line of "Starfire credits" at the
//!   top-up's amount, the top-up's id as `client_reference_id` and in the metadata). The credit
//!   is posted when the `checkout.session.completed` webhook reports it paid
//!   (`billing::webhook`), never when the session is created.
//! - Postpaid (enterprise) usage: every billed request of an organization with a Stripe
//!   customer owes one Billing Meter event, queued in the same transaction that finalizes the
//!   request (`stripe_meter_outbox`). [`run_meter_reporter`] sends them in batches: the
//!   request id is both the event's `identifier` (Stripe counts an identifier once) and the
//!   idempotency key, so a batch retried after a timeout or a crash counts nothing twice. The
//!   meter event's value is the request's cost in micro-USD: configure the Stripe price of
//!   the meter at 0.0001 cents per unit.

use crate::store::TenantId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stripe::{
    Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest as _,
};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    ProductData,
};
use stripe_checkout::CheckoutSessionMode;
use stripe_core::customer::CreateCustomer;

use super::config::StripeConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::stripe::{MeterRow, TopUp};
use crate::store::{now_ms, Store};

/// How long one call to Stripe may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Meter events sent per batch (concurrently).
const METER_BATCH: u32 = 50;
/// How long a reporter holds the rows it claimed.
const METER_LEASE_MS: i64 = 120_000;

/// A configured Stripe account.
#[derive(Clone)]
pub struct Stripe {
    client: Arc<Client>,
    config: StripeConfig,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("config", &self.config)
            .finish()
    }
}

/// A Checkout Session made for a top-up.
#[derive(Debug, Clone)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

impl Stripe {
    /// The client for the configured account, or `None` when Stripe is not configured.
    pub fn from_config(config: &StripeConfig) -> Result<Option<Stripe>, String> {
        let Some(secret) = &config.secret_key else {
            return Ok(None);
        };
        let client = ClientBuilder::new(secret.clone())
            .url(config.api_base.clone())
            .timeout(CALL_TIMEOUT)
            .app_info("Starfire", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(|e| format!("the Stripe client cannot be built: {e}"))?;
        Ok(Some(Stripe {
            client: Arc::new(client),
            config: config.clone(),
        }))
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// The organization's Stripe customer, created the first time.
    pub async fn ensure_customer(
        &self,
        store: &Store,
        tenant_id: &TenantId,
    ) -> Result<String, ApiError> {
        let tenant = store.tenant_billing(tenant_id).await?;
        if let Some(id) = tenant.stripe_customer_id {
            return Ok(id);
        }
        let customer = CreateCustomer::new()
            .name(tenant.name.clone())
            .metadata(HashMap::from([(
                "starfire_organization".to_owned(),
                tenant_id.to_string(),
            )]))
            .customize()
            .request_strategy(idempotent(&format!("starfire-customer-{tenant_id}"))?)
            .send(&*self.client)
            .await
            .map_err(|e| upstream("create the Stripe customer", e))?;
        Ok(store
            .set_stripe_customer(tenant_id, customer.id.as_str())
            .await?)
    }

    /// A Checkout Session that pays for `top_up`.
    pub async fn checkout_session(
        &self,
        customer_id: &str,
        top_up: &TopUp,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<CheckoutSession, ApiError> {
        let cents = top_up.amount.micros() / 10_000;
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD);
        price.unit_amount = Some(cents);
        price.product_data = Some(ProductData::new("Starfire credits"));
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price_data = Some(price);
        line.quantity = Some(1);
        let metadata = HashMap::from([
            (
                "starfire_organization".to_owned(),
                top_up.tenant_id.to_string(),
            ),
            ("starfire_top_up".to_owned(), top_up.id.clone()),
        ]);
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .customer(customer_id)
            .client_reference_id(top_up.id.clone())
            .metadata(metadata)
            .line_items(vec![line])
            .success_url(success_url)
            .cancel_url(cancel_url)
            .customize()
            .request_strategy(idempotent(&format!("starfire-top-up-{}", top_up.id))?)
            .send(&*self.client)
            .await
            .map_err(|e| upstream("create the Checkout Session", e))?;
        let url = session.url.ok_or_else(|| {
            ApiError::Internal("Stripe returned a Checkout Session without a URL".into())
        })?;
        Ok(CheckoutSession {
            id: session.id.as_str().to_owned(),
            url,
        })
    }

    /// Sends one meter event; the request id makes a resend count once.
    async fn send_meter_event(&self, row: &MeterRow) -> Result<(), String> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), row.customer_id.clone()),
            ("value".to_owned(), row.value.to_string()),
        ]);
        CreateBillingMeterEvent::new(self.config.meter_event_name.clone(), payload)
            .identifier(row.request_id.clone())
            .timestamp(row.event_ms / 1000)
            .customize()
            .request_strategy(
                idempotent(&format!("starfire-meter-{}", row.request_id))
                    .map_err(|e| e.to_string())?,
            )
            .send(&*self.client)
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    /// Sends one batch of the meter events owed; returns how many were reported.
    pub async fn report_meter_batch(&self, store: &Store, metrics: &Metrics) -> usize {
        let batch = match store
            .claim_meter_batch(now_ms(), METER_LEASE_MS, METER_BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Stripe meter outbox");
                return 0;
            }
        };
        let results =
            futures_util::future::join_all(batch.iter().map(|row| self.send_meter_event(row)))
                .await;
        let mut reported = 0;
        for (row, result) in batch.iter().zip(results) {
            let outcome = match &result {
                Ok(()) => {
                    reported += 1;
                    "reported"
                }
                Err(error) => {
                    tracing::warn!(request_id = %row.request_id, attempts = row.attempts, %error,
                        "a Stripe meter event was not accepted; it is retried");
                    "failed"
                }
            };
            metrics.inc(
                "starfire_stripe_meter_events_total",
                "Stripe meter events sent, by outcome.",
                &[("outcome", outcome)],
                1,
            );
            let done = result.as_ref().map(|()| now_ms()).map_err(String::as_str);
            if let Err(e) = store.finish_meter_event(&row.request_id, done).await {
                tracing::warn!(error = %e, "cannot record a Stripe meter event");
            }
        }
        reported
    }
}

/// Sends the meter events owed, every `meter_interval_secs`, for as long as the process runs
/// (every replica may run it: rows are claimed, and a resend counts once at Stripe).
pub async fn run_meter_reporter(stripe: Stripe, store: Store, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_secs(stripe.config.meter_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Drain full batches at once; a partial one means the outbox is empty for now.
        while stripe.report_meter_batch(&store, &metrics).await == METER_BATCH as usize {}
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, ApiError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| ApiError::Internal(format!("idempotency key: {e}")))
}

/// What a Stripe failure says, without the request (which carries nothing secret, but the
/// response may be long).
fn describe(e: &StripeError) -> String {
    match e {
        StripeError::Stripe(err, status) => format!("Stripe answered {status}: {err:?}"),
        other => other.to_string(),
    }
    .chars()
    .take(500)
    .collect()
}

fn upstream(what: &str, e: StripeError) -> ApiError {
    tracing::warn!(error = %describe(&e), "Stripe refused to {what}");
    ApiError::Unavailable {
        message: format!("The payment provider could not {what}; try again shortly."),
        code: crate::error::Code::PaymentProviderUnavailable,
        retry_after: Some(5),
    }
}
