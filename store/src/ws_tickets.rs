//! WebSocket tickets: issued by `POST /v1/ws/tickets`, redeemed once by `GET /v1/chat/ws?ticket=`.
//! Only a ticket's SHA-256 is stored. Redeeming is one `DELETE ... RETURNING`, so a ticket is
//! single-use even when several gateway replicas share the database.

use crate::ids::{KeyId, TenantId, UserId};
use sqlx::Row as _;

use super::{now_ms, Store, StoreResult};
use crate::secret::constant_time_eq;

/// The credential a ticket stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketHolder {
    /// A project API key.
    ApiKey { key_id: KeyId },
    /// A console session of a user.
    Session { user_id: UserId, session_id: String },
}

/// A ticket that was just redeemed (and so no longer exists).
#[derive(Debug, Clone)]
pub struct RedeemedTicket {
    pub tenant_id: TenantId,
    pub holder: TicketHolder,
}

impl Store {
    /// Stores a new ticket by its hash. Expired tickets nobody redeemed are swept here.
    pub async fn create_ws_ticket(
        &self,
        ticket_hash: &str,
        tenant_id: &TenantId,
        holder: &TicketHolder,
        expires_ms: i64,
    ) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM ws_tickets WHERE expires_ms <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        let (credential, key_id, user_id, session_id) = match holder {
            TicketHolder::ApiKey { key_id } => ("api_key", Some(key_id), None, None),
            TicketHolder::Session {
                user_id,
                session_id,
            } => ("session", None, Some(user_id), Some(session_id)),
        };
        sqlx::query(
            "INSERT INTO ws_tickets (ticket_hash, tenant_id, credential, key_id, user_id, session_id, \
             created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(ticket_hash)
        .bind(tenant_id)
        .bind(credential)
        .bind(key_id)
        .bind(user_id)
        .bind(session_id)
        .bind(now)
        .bind(expires_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Consumes the ticket whose hash is `ticket_hash`: `None` when it is unknown, was redeemed
    /// already, or has expired. Either way it cannot be redeemed again.
    pub async fn redeem_ws_ticket(&self, ticket_hash: &str) -> StoreResult<Option<RedeemedTicket>> {
        // One statement: whichever of two concurrent redemptions deletes the row gets it.
        let row = sqlx::query(
            "DELETE FROM ws_tickets WHERE ticket_hash = $1 \
             RETURNING ticket_hash, tenant_id, credential, key_id, user_id, session_id, expires_ms",
        )
        .bind(ticket_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("ticket_hash")?;
        let expires_ms: i64 = row.try_get("expires_ms")?;
        if !constant_time_eq(&stored, ticket_hash) || expires_ms <= now_ms() {
            return Ok(None);
        }
        let credential: String = row.try_get("credential")?;
        let key_id: Option<KeyId> = row.try_get("key_id")?;
        let user_id: Option<UserId> = row.try_get("user_id")?;
        let session_id: Option<String> = row.try_get("session_id")?;
        let holder = match (credential.as_str(), key_id, user_id, session_id) {
            ("api_key", Some(key_id), _, _) => TicketHolder::ApiKey { key_id },
            ("session", _, Some(user_id), Some(session_id)) => TicketHolder::Session {
                user_id,
                session_id,
            },
            _ => return Ok(None),
        };
        Ok(Some(RedeemedTicket {
            tenant_id: row.try_get("tenant_id")?,
            holder,
        }))
    }
}
