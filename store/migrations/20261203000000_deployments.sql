-- Private (dedicated) deployments: replicas of a model that only their organization's requests
-- reach, their state machine's history, and the reserved capacity they are charged for.
--   state  requested | rejected | provisioning | ready | scaling | stopping | stopped |
--          deleting | deleted | failed   (see gateway::deployments::state)
-- Names are unique among an organization's deployments that are not deleted.
CREATE TABLE deployments (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    name              TEXT NOT NULL,
    model             TEXT NOT NULL,
    hardware          TEXT NOT NULL,
    replicas_min      BIGINT NOT NULL,
    replicas_max      BIGINT NOT NULL,
    kv_cache_memory   BIGINT NOT NULL,
    max_model_len     BIGINT,
    -- 'none': only its own replicas; 'shared': the shared pool when none is ready.
    overflow          TEXT NOT NULL,
    state             TEXT NOT NULL,
    status_message    TEXT,
    -- What the driver reports: replicas that answer /ready, and their base URLs (one per line).
    ready_replicas    BIGINT NOT NULL DEFAULT 0,
    endpoints         TEXT NOT NULL DEFAULT '',
    -- Reserved capacity is charged up to here (NULL while not running).
    billed_until_ms   BIGINT,
    created_by        TEXT NOT NULL,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL,
    CHECK (replicas_min >= 1 AND replicas_max >= replicas_min AND kv_cache_memory > 0)
);
CREATE UNIQUE INDEX deployments_name ON deployments (tenant_id, name) WHERE state <> 'deleted';
CREATE INDEX deployments_tenant ON deployments (tenant_id, created_ms, id);
CREATE INDEX deployments_state ON deployments (state);

-- Every transition, with who made it (`user:<id>`, `api_key:<id>`, `operator:<name>`,
-- `system`) and why.
CREATE TABLE deployment_events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    deployment_id   TEXT NOT NULL REFERENCES deployments (id),
    from_state      TEXT,
    to_state        TEXT NOT NULL,
    actor           TEXT NOT NULL,
    message         TEXT,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, created_ms, id);

-- Reserved capacity charged: one row per deployment and period (UNIQUE: a period is charged
-- once however many replicas of the gateway bill), priced at the rate in force then.
CREATE TABLE deployment_charges (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants (id),
    deployment_id               TEXT NOT NULL REFERENCES deployments (id),
    period_start_ms             BIGINT NOT NULL,
    period_end_ms               BIGINT NOT NULL,
    replicas                    BIGINT NOT NULL,
    micros_per_replica_hour     BIGINT NOT NULL,
    -- The capacity price row it was charged at.
    price_id                    TEXT,
    amount_micros               BIGINT NOT NULL,
    -- What the prepaid balance paid of it (0 for a postpaid tenant: invoiced), and what a
    -- prepaid balance could not pay (its credits ran out: the deployment is stopped and the
    -- rest is owed on the invoice).
    paid_micros                 BIGINT NOT NULL,
    short_micros                BIGINT NOT NULL,
    created_ms                  BIGINT NOT NULL,
    UNIQUE (deployment_id, period_start_ms)
);
CREATE INDEX deployment_charges_tenant ON deployment_charges (tenant_id, period_start_ms);

-- A prepaid tenant's ledger entry for a capacity charge points at it (at most once).
ALTER TABLE credit_ledger ADD COLUMN charge_id TEXT;
CREATE UNIQUE INDEX credit_ledger_charge ON credit_ledger (charge_id);

-- An invoice line that is not tokens (a deployment's reserved capacity) says what it is.
ALTER TABLE invoice_lines ADD COLUMN description TEXT;

-- The dated catalog of reserved capacity, like model_prices for tokens: per hardware, rows each
-- effective from a time on (inserted only; a period is charged at the row in force at its
-- start). Seeded from `[deployments] replica_hour_micros` (effective from 0).
CREATE TABLE capacity_prices (
    id                        TEXT PRIMARY KEY,
    hardware                  TEXT NOT NULL,
    micros_per_replica_hour   BIGINT NOT NULL,
    effective_ms              BIGINT NOT NULL,
    created_ms                BIGINT NOT NULL,
    created_by                TEXT NOT NULL,
    UNIQUE (hardware, effective_ms),
    CHECK (micros_per_replica_hour >= 0)
);
