-- Billing: the dated price catalog, the causes of ledger entries, and finalized invoices. Shared
-- SQL for SQLite and PostgreSQL, like the earlier migrations; amounts are BIGINT micro-USD.

-- What a model's tokens cost from `effective_ms` on, until the model's next row. Append-only: a
-- price change is a new row effective from then (never in the past), so that every request
-- keeps the price that was effective at its start. Seeded from the `[metering.prices]` table
-- (effective from 0) the first time a model is priced.
CREATE TABLE model_prices (
    id                               TEXT PRIMARY KEY,
    model                            TEXT NOT NULL,
    currency                         TEXT NOT NULL,
    input_micros_per_million         BIGINT NOT NULL,
    cached_input_micros_per_million  BIGINT NOT NULL,
    output_micros_per_million        BIGINT NOT NULL,
    effective_ms                     BIGINT NOT NULL,
    created_ms                       BIGINT NOT NULL,
    -- `config` for seeded rows, `operator:<name>` for prices added through the admin API.
    created_by                       TEXT NOT NULL,
    UNIQUE (model, effective_ms),
    CHECK (input_micros_per_million >= 0 AND cached_input_micros_per_million >= 0
           AND output_micros_per_million >= 0)
);

-- The catalog row a request was priced at (set at admission; NULL for events older than the
-- catalog). Invoices group their lines by it.
ALTER TABLE usage_events ADD COLUMN price_id TEXT;

-- What caused a ledger entry besides a request: the payment that bought a top-up (unique, so a
-- payment is credited once however often it is reported), the operator who made an adjustment
-- or refund, and for a refund the entry it reverses (unique: an entry is refunded at most once).
ALTER TABLE credit_ledger ADD COLUMN payment_id TEXT;
ALTER TABLE credit_ledger ADD COLUMN actor TEXT;
ALTER TABLE credit_ledger ADD COLUMN refund_of TEXT;
CREATE UNIQUE INDEX credit_ledger_payment ON credit_ledger (payment_id);
CREATE UNIQUE INDEX credit_ledger_refund ON credit_ledger (refund_of);

-- A tenant's statement for one calendar month (UTC), written once when the period is over and
-- never changed after: the store has no UPDATE or DELETE for these tables, and a second
-- finalization of the same period keeps the first (UNIQUE (tenant_id, period_start_ms)).
CREATE TABLE invoices (
    id                      TEXT PRIMARY KEY,
    tenant_id               TEXT NOT NULL REFERENCES tenants (id),
    period_start_ms         BIGINT NOT NULL,
    period_end_ms           BIGINT NOT NULL,
    plan                    TEXT NOT NULL,
    currency                TEXT NOT NULL,
    -- The sum of the lines.
    subtotal_micros         BIGINT NOT NULL,
    -- What prepaid credits paid of it (the ledger's usage debits of the period's requests).
    credits_applied_micros  BIGINT NOT NULL,
    -- subtotal - credits applied: what a postpaid tenant owes.
    amount_due_micros       BIGINT NOT NULL,
    created_ms              BIGINT NOT NULL,
    UNIQUE (tenant_id, period_start_ms)
);
CREATE INDEX invoices_tenant ON invoices (tenant_id, created_ms, id);

-- One line per model and catalog price of the period's billed requests.
CREATE TABLE invoice_lines (
    invoice_id                       TEXT NOT NULL REFERENCES invoices (id),
    line_no                          BIGINT NOT NULL,
    model                            TEXT NOT NULL,
    price_id                         TEXT,
    requests                         BIGINT NOT NULL,
    input_tokens                     BIGINT NOT NULL,
    cached_tokens                    BIGINT NOT NULL,
    output_tokens                    BIGINT NOT NULL,
    input_micros_per_million         BIGINT,
    cached_input_micros_per_million  BIGINT,
    output_micros_per_million        BIGINT,
    amount_micros                    BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
