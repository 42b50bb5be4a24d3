-- Metering and budgets: one usage event per accepted request, the prepaid credit ledger, and the
-- per-minute rollup the usage API reads. Amounts are BIGINT micro-units of USD (1 USD =
-- 1,000,000), never floats. Shared SQL for SQLite and PostgreSQL, like the accounts migration.

-- One row per request, written `in_progress` at admission and finalized exactly once at the end
-- (completed, cancelled, failed, interrupted) or written `rejected` when admission refused it.
-- `heartbeat_ms` (with the tokens so far) is refreshed by the owning gateway instance; a row
-- whose heartbeat stopped is an orphan of a process that died, closed by the next sweep with
-- the tokens last reported. Progress updates go by primary key.
CREATE TABLE usage_events (
    request_id         TEXT PRIMARY KEY,
    http_request_id    TEXT,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    project_id         TEXT,
    api_key_id         TEXT,
    endpoint           TEXT NOT NULL,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    ttft_ms            BIGINT,
    latency_ms         BIGINT,
    reserved_micros    BIGINT NOT NULL,
    cost_micros        BIGINT NOT NULL,
    instance_id        TEXT NOT NULL,
    started_ms         BIGINT NOT NULL,
    heartbeat_ms       BIGINT NOT NULL,
    finished_ms        BIGINT
);
-- The orphan sweep (only unfinished rows, oldest heartbeat first).
CREATE INDEX usage_events_open ON usage_events (status, heartbeat_ms);
-- A tenant's events in time order.
CREATE INDEX usage_events_tenant ON usage_events (tenant_id, started_ms);

-- The prepaid balance of a tenant: the sum of its ledger (kept here, in the same transaction as
-- every ledger entry, so that admission can reserve with one atomic UPDATE) and what in-flight
-- requests hold. Tenants without a row are postpaid (no prepaid limit).
CREATE TABLE credit_accounts (
    tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id),
    balance_micros   BIGINT NOT NULL,
    reserved_micros  BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    -- What admission guarantees, enforced by the database as well.
    CHECK (reserved_micros >= 0 AND balance_micros >= reserved_micros)
);

-- Append-only: grant, top_up, usage (negative), adjustment. Never updated or deleted.
CREATE TABLE credit_ledger (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    kind           TEXT NOT NULL,
    amount_micros  BIGINT NOT NULL,
    request_id     TEXT UNIQUE,
    note           TEXT,
    created_ms     BIGINT NOT NULL
);
CREATE INDEX credit_ledger_tenant ON credit_ledger (tenant_id, created_ms, id);

-- Usage per minute (by the request's start), endpoint, project, key and model; updated in the
-- transaction that finalizes each event, so totals always equal the sum of the events.
-- Project and key are '' when absent so that the primary key can hold them.
CREATE TABLE usage_minutes (
    tenant_id       TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    minute_ms       BIGINT NOT NULL,
    project_id      TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    model           TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    cached_tokens   BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cost_micros     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, endpoint, minute_ms, project_id, api_key_id, model)
);
