-- Idempotency keys of the POSTs that create things: a retried request with the same
-- `Idempotency-Key` (per tenant and principal) gets the first response back. Only the SHA-256 of
-- the key is kept, and the stored response is sealed (ChaCha20-Poly1305) under a key derived from
-- the idempotency key and the server secret, so the table alone never reveals a created secret.
-- status is NULL while the first request is still running. Rows expire (expires_ms).
CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    principal     TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT,
    response      TEXT,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, principal, key_hash)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);
