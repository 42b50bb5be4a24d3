-- Spend caps: an optional monthly cap per organization and per project, and an optional
-- lifetime budget per API key. Like the prepaid account, a row holds what was spent and what
-- in-flight requests reserve, so that admission reserves a request's maximum cost with one
-- conditional UPDATE per cap, in the transaction that reserves the credit and writes the usage
-- row. Amounts are BIGINT micro-USD. A cleared budget's row is deleted.
--   scope     'organization' (scope_id = tenant_id), 'project' or 'api_key'
--   period    'monthly' (spent is reset when the first request of a new UTC month arrives,
--             period_start_ms being the month it counts) or 'lifetime' (never reset)
CREATE TABLE budgets (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    scope            TEXT NOT NULL,
    scope_id         TEXT NOT NULL,
    period           TEXT NOT NULL,
    limit_micros     BIGINT NOT NULL,
    period_start_ms  BIGINT NOT NULL,
    spent_micros     BIGINT NOT NULL,
    reserved_micros  BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, scope_id),
    CHECK (reserved_micros >= 0 AND limit_micros > 0)
);

-- What a request reserved on the caps at admission and on which of them (a comma-separated
-- list of scopes), so that its end releases exactly that.
ALTER TABLE usage_events ADD COLUMN budget_reserved_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN budget_scopes TEXT NOT NULL DEFAULT '';
