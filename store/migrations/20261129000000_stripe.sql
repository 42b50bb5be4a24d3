-- Stripe: where money moves (the ledger stays the source of truth). Shared SQL for SQLite and
-- PostgreSQL; amounts are BIGINT micro-USD.

-- A tenant's Stripe customer (created on its first top-up, or when it becomes enterprise), and
-- whether its last Stripe invoice was paid: `ok`, or `past_due` after `invoice.payment_failed`
-- until an `invoice.paid` (a postpaid organization that is past due is refused new requests).
ALTER TABLE tenants ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE tenants ADD COLUMN billing_status TEXT NOT NULL DEFAULT 'ok';
-- When `billing_status` last changed from a Stripe event (its `created`, ms): an older event
-- delivered late never overrides a newer one.
ALTER TABLE tenants ADD COLUMN billing_status_ms BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tenants_stripe_customer ON tenants (stripe_customer_id);

-- A prepaid top-up: a Checkout Session for `amount_micros`, credited once when Stripe reports
-- it paid (`checkout.session.completed`; the ledger entry's payment_id is the session id).
CREATE TABLE top_ups (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    amount_micros        BIGINT NOT NULL,
    currency             TEXT NOT NULL,
    -- `creating` (the session is being made), `open`, `completed`, `expired`, `failed`.
    status               TEXT NOT NULL,
    checkout_session_id  TEXT UNIQUE,
    checkout_url         TEXT,
    -- `user:<id>` or `key:<id>`.
    created_by           TEXT NOT NULL,
    created_ms           BIGINT NOT NULL,
    completed_ms         BIGINT,
    ledger_entry_id      TEXT,
    CHECK (amount_micros > 0)
);
CREATE INDEX top_ups_tenant ON top_ups (tenant_id, created_ms, id);

-- Every Stripe event applied, by Stripe's event id: a redelivered event is acknowledged and
-- changes nothing. Written in the same transaction as what the event changed.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    tenant_id    TEXT,
    -- What applying it did (`credited`, `ignored: ...`).
    outcome      TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL
);

-- Stripe invoices of postpaid tenants as the webhooks report them.
CREATE TABLE stripe_invoices (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    status             TEXT NOT NULL,
    amount_due_cents   BIGINT NOT NULL,
    amount_paid_cents  BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    hosted_url         TEXT,
    updated_ms         BIGINT NOT NULL
);
CREATE INDEX stripe_invoices_tenant ON stripe_invoices (tenant_id, updated_ms);

-- The meter events owed to Stripe for postpaid (enterprise) usage: one row per billed request,
-- written in the transaction that finalizes the request (an outbox), reported in batches with
-- the request id as Stripe's identifier and idempotency key, so a retry never counts twice.
CREATE TABLE stripe_meter_outbox (
    request_id     TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    customer_id    TEXT NOT NULL,
    -- The request's cost, micro-USD (the meter's unit).
    value          BIGINT NOT NULL,
    event_ms       BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    -- A reporter's claim on the row until then (replicas never send the same row at once).
    claimed_until  BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    reported_ms    BIGINT
);
CREATE INDEX stripe_meter_outbox_pending ON stripe_meter_outbox (reported_ms, event_ms);
