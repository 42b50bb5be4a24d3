//! Console sessions. A login starts a family; each refresh marks the presented refresh token as
//! used and issues the next one in the same family. A token presented a second time means it
//! leaked, so the whole family is revoked (RFC 6819 §5.2.2.3, OAuth 2.1 refresh rotation).

use crate::ids::{TenantId, UserId};
use sqlx::Row as _;

use super::users::Role;
use super::{now_ms, Store, StoreResult};
use crate::secret::new_id;

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; `family_id` continues with the new token.
    Rotated {
        family_id: String,
        user_id: UserId,
        tenant_id: TenantId,
    },
    /// The token had been used already: the family is now revoked.
    Reused {
        family_id: String,
        user_id: UserId,
        tenant_id: TenantId,
    },
    /// Unknown, expired, or its family was revoked.
    Invalid,
}

impl Store {
    /// Starts a session family with its first refresh token; returns the family id.
    pub async fn create_session(
        &self,
        user_id: &UserId,
        tenant_id: &TenantId,
        refresh_hash: &str,
        refresh_expires_ms: i64,
    ) -> StoreResult<String> {
        let family_id = new_id("sess");
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO session_families (id, user_id, tenant_id, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&family_id)
        .bind(user_id)
        .bind(tenant_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        insert_refresh_token(&mut tx, &family_id, refresh_hash, now, refresh_expires_ms).await?;
        tx.commit().await?;
        Ok(family_id)
    }

    /// Presents the refresh token whose hash is `old_hash`; when live, `new_hash` replaces it.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_ms: i64,
    ) -> StoreResult<Rotation> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT t.id, t.family_id, t.expires_ms, t.used_ms, f.user_id, f.tenant_id, f.revoked_ms \
             FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        let token_id: String = row.try_get("id")?;
        let family_id: String = row.try_get("family_id")?;
        let user_id: UserId = row.try_get("user_id")?;
        let tenant_id: TenantId = row.try_get("tenant_id")?;
        let expires_ms: i64 = row.try_get("expires_ms")?;
        let used_ms: Option<i64> = row.try_get("used_ms")?;
        let revoked_ms: Option<i64> = row.try_get("revoked_ms")?;
        if revoked_ms.is_some() || expires_ms <= now {
            return Ok(Rotation::Invalid);
        }
        let reused = Rotation::Reused {
            family_id: family_id.clone(),
            user_id: user_id.clone(),
            tenant_id: tenant_id.clone(),
        };
        if used_ms.is_some() {
            self.revoke_session(&family_id).await?;
            return Ok(reused);
        }
        let mut tx = self.begin_write().await?;
        // Only one of two concurrent refreshes with the same token can win this update.
        let marked =
            sqlx::query("UPDATE refresh_tokens SET used_ms = $1 WHERE id = $2 AND used_ms IS NULL")
                .bind(now)
                .bind(&token_id)
                .execute(&mut **tx)
                .await?;
        if marked.rows_affected() != 1 {
            tx.rollback().await?;
            self.revoke_session(&family_id).await?;
            return Ok(reused);
        }
        insert_refresh_token(&mut tx, &family_id, new_hash, now, new_expires_ms).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            family_id,
            user_id,
            tenant_id,
        })
    }

    /// Ends a session family: its access tokens and refresh tokens stop working.
    pub async fn revoke_session(&self, family_id: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE session_families SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(family_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The caller's current role when the session is live and the user still a member.
    pub async fn session_role(
        &self,
        family_id: &str,
        user_id: &UserId,
        tenant_id: &TenantId,
    ) -> StoreResult<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT m.role FROM session_families f JOIN memberships m \
             ON m.tenant_id = f.tenant_id AND m.user_id = f.user_id \
             WHERE f.id = $1 AND f.user_id = $2 AND f.tenant_id = $3 AND f.revoked_ms IS NULL",
        )
        .bind(family_id)
        .bind(user_id)
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }
}

async fn insert_refresh_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    family_id: &str,
    hash: &str,
    now: i64,
    expires_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, token_hash, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("rt"))
    .bind(family_id)
    .bind(hash)
    .bind(now)
    .bind(expires_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
