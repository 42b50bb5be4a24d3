-- Accounts: tenants, users, memberships, projects, API keys, console sessions, invites, audit log.
-- Written in the SQL that SQLite and PostgreSQL share, so one migration set serves both:
-- ids are TEXT, times are BIGINT milliseconds since the Unix epoch, and "is it revoked / archived /
-- accepted" is a nullable time rather than a boolean.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    role        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    archived_ms  BIGINT
);
CREATE INDEX projects_tenant ON projects (tenant_id, created_ms, id);

-- kind is 'project' (project_id set) or 'admin' (organization admin key, project_id NULL).
-- Only the SHA-256 of the secret is kept; prefix is the part shown in listings.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    project_id      TEXT REFERENCES projects (id),
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    owner_type      TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    limit_rpm       BIGINT,
    limit_tpm       BIGINT,
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT,
    last_used_ms    BIGINT,
    revoked_ms      BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, kind, created_ms, id);

-- One family per login; every refresh rotates the token inside the family. Presenting a token
-- that was already rotated revokes the whole family.
CREATE TABLE session_families (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES session_families (id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    used_ms     BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE invites (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    email        TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    invited_by   TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    accepted_ms  BIGINT
);
CREATE INDEX invites_tenant ON invites (tenant_id, created_ms, id);

CREATE TABLE audit_logs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    action       TEXT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    ip           TEXT,
    request_id   TEXT,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX audit_logs_tenant ON audit_logs (tenant_id, created_ms, id);

-- The members of a tenant as the API lists them (one row per membership, id = the user's id).
CREATE VIEW members AS
    SELECT m.tenant_id, m.user_id AS id, m.role, m.created_ms, u.email, u.name
    FROM memberships m JOIN users u ON u.id = m.user_id;
