//! Idempotency keys: a reservation row per `(tenant, principal, key hash)`, completed with the
//! sealed first response. See `api::idempotency` for the protocol.

use crate::ids::TenantId;
use sqlx::Row as _;

use super::{is_unique_violation, now_ms, Store, StoreResult};

/// After this long an unfinished reservation is abandoned and the key can be used again.
const STALE_RESERVATION_MS: i64 = 60_000;

/// What a new request with an idempotency key finds.
#[derive(Debug)]
pub enum Reservation {
    /// Nobody used the key (or its row expired): it is now reserved for this request.
    Reserved,
    /// A request with this key is still running.
    InProgress { request_hash: String },
    /// A request with this key finished; its status and sealed response.
    Done {
        request_hash: String,
        status: i64,
        response: String,
    },
}

impl Store {
    /// Reserves `key_hash` for a request, or reports what an earlier request with it left.
    pub async fn reserve_idempotency_key(
        &self,
        tenant_id: &TenantId,
        principal: &str,
        key_hash: &str,
        request_hash: &str,
        ttl_ms: i64,
    ) -> StoreResult<Reservation> {
        let now = now_ms();
        // Expired keys go, and so do reservations whose request never finished (its handler was
        // dropped, the process stopped): creating takes milliseconds, not a minute.
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE expires_ms < $1 OR (status IS NULL AND created_ms < $2)",
        )
        .bind(now)
        .bind(now - STALE_RESERVATION_MS)
        .execute(self.pool())
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
             (tenant_id, principal, key_hash, request_hash, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id)
        .bind(principal)
        .bind(key_hash)
        .bind(request_hash)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(self.pool())
        .await;
        match inserted {
            Ok(_) => return Ok(Reservation::Reserved),
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let row = sqlx::query(
            "SELECT request_hash, status, response FROM idempotency_keys \
             WHERE tenant_id = $1 AND principal = $2 AND key_hash = $3",
        )
        .bind(tenant_id)
        .bind(principal)
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            // Released between our insert and select: the caller may simply retry.
            return Ok(Reservation::InProgress {
                request_hash: request_hash.to_owned(),
            });
        };
        let stored_hash: String = row.try_get("request_hash")?;
        let status: Option<i64> = row.try_get("status")?;
        let response: Option<String> = row.try_get("response")?;
        Ok(match (status, response) {
            (Some(status), Some(response)) => Reservation::Done {
                request_hash: stored_hash,
                status,
                response,
            },
            _ => Reservation::InProgress {
                request_hash: stored_hash,
            },
        })
    }

    /// Stores the response of the request that holds the reservation.
    pub async fn complete_idempotency_key(
        &self,
        tenant_id: &TenantId,
        principal: &str,
        key_hash: &str,
        status: i64,
        response: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, response = $2 \
             WHERE tenant_id = $3 AND principal = $4 AND key_hash = $5",
        )
        .bind(status)
        .bind(response)
        .bind(tenant_id)
        .bind(principal)
        .bind(key_hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Drops a reservation whose request failed, so that a retry runs it again.
    pub async fn release_idempotency_key(
        &self,
        tenant_id: &TenantId,
        principal: &str,
        key_hash: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE tenant_id = $1 AND principal = $2 AND key_hash = $3 AND status IS NULL",
        )
        .bind(tenant_id)
        .bind(principal)
        .bind(key_hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
