-- Short-lived, single-use tickets that authenticate a WebSocket upgrade (`GET /v1/chat/ws?ticket=`)
-- for browsers, which cannot set headers on a WebSocket. Only the SHA-256 of a ticket is kept. A
-- ticket acts as the credential that created it: an API key (key_id) or a console session
-- (user_id, session_id); that credential is checked again when the ticket is redeemed.
-- Redeeming deletes the row, so of two replicas presenting the same ticket only one gets it.

CREATE TABLE ws_tickets (
    ticket_hash  TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    credential   TEXT NOT NULL,
    key_id       TEXT REFERENCES api_keys (id),
    user_id      TEXT REFERENCES users (id),
    session_id   TEXT REFERENCES session_families (id),
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);
CREATE INDEX ws_tickets_expires ON ws_tickets (expires_ms);
