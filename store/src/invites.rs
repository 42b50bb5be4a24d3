//! Invitations to join a tenant. The invite token is shown once to whoever created the invite;
//! the invitee presents it at signup or login.

use crate::ids::{TenantId, UserId};
use sqlx::Row as _;

use super::page::{Listing, Page, PageRequest};
use super::users::Role;
use super::{created_ms, now_ms, Row, Store, StoreError, StoreResult};
use crate::secret::new_id;

#[derive(Debug, Clone)]
pub struct Invite {
    pub id: String,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub accepted_ms: Option<i64>,
}

impl Invite {
    pub fn status(&self, now_ms: i64) -> &'static str {
        if self.accepted_ms.is_some() {
            "accepted"
        } else if self.expires_ms <= now_ms {
            "expired"
        } else {
            "pending"
        }
    }
}

const COLUMNS: &str = "id, tenant_id, email, role, invited_by, created_ms, expires_ms, accepted_ms";

fn from_row(row: &Row) -> StoreResult<Invite> {
    let role: String = row.try_get("role")?;
    Ok(Invite {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        email: row.try_get("email")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        invited_by: row.try_get("invited_by")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        accepted_ms: row.try_get("accepted_ms")?,
    })
}

fn not_found(invite_id: &str) -> StoreError {
    StoreError::NotFound(format!("No invite found with id '{invite_id}'."))
}

impl Store {
    /// Creates an invite; Conflict when the email is a member or has a pending invite.
    pub async fn create_invite(
        &self,
        tenant_id: &TenantId,
        email: &str,
        role: Role,
        invited_by: &str,
        token_hash: &str,
        expires_ms: i64,
    ) -> StoreResult<Invite> {
        if self.member_by_email(tenant_id, email).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "'{email}' is already a member of this organization."
            )));
        }
        let now = now_ms();
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM invites WHERE tenant_id = $1 AND email = $2 \
             AND accepted_ms IS NULL AND expires_ms > $3",
        )
        .bind(tenant_id)
        .bind(email)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        if pending > 0 {
            return Err(StoreError::Conflict(format!(
                "'{email}' already has a pending invite."
            )));
        }
        let invite = Invite {
            id: new_id("invite"),
            tenant_id: tenant_id.to_owned(),
            email: email.to_owned(),
            role,
            invited_by: invited_by.to_owned(),
            created_ms: created_ms(),
            expires_ms,
            accepted_ms: None,
        };
        sqlx::query(
            "INSERT INTO invites (id, tenant_id, email, role, token_hash, invited_by, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&invite.id)
        .bind(&invite.tenant_id)
        .bind(&invite.email)
        .bind(invite.role.as_str())
        .bind(token_hash)
        .bind(&invite.invited_by)
        .bind(invite.created_ms)
        .bind(invite.expires_ms)
        .execute(self.pool())
        .await?;
        Ok(invite)
    }

    pub async fn invite(&self, tenant_id: &TenantId, invite_id: &str) -> StoreResult<Invite> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invites WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(invite_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| not_found(invite_id))?;
        from_row(&row)
    }

    pub async fn list_invites(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Invite>> {
        let listing = Listing {
            columns: COLUMNS,
            table: "invites",
            filter: "",
            binds: &[],
            newest_first: false,
            from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Deletes an invite that has not been accepted.
    pub async fn delete_invite(&self, tenant_id: &TenantId, invite_id: &str) -> StoreResult<()> {
        let invite = self.invite(tenant_id, invite_id).await?;
        if invite.accepted_ms.is_some() {
            return Err(StoreError::Conflict(format!(
                "Invite '{invite_id}' was already accepted."
            )));
        }
        sqlx::query("DELETE FROM invites WHERE tenant_id = $1 AND id = $2 AND accepted_ms IS NULL")
            .bind(tenant_id)
            .bind(invite_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The pending, unexpired invite whose token hash is `token_hash`.
    pub async fn pending_invite(&self, token_hash: &str) -> StoreResult<Option<Invite>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invites WHERE token_hash = $1 AND accepted_ms IS NULL AND expires_ms > $2"
        ))
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Accepts the pending invite whose token hash is `token_hash` for the user `user_id` with
    /// email `email`: the user becomes a member with the invite's role. `None` when there is no
    /// such pending, unexpired invite for that email.
    pub async fn accept_invite(
        &self,
        token_hash: &str,
        user_id: &UserId,
        email: &str,
    ) -> StoreResult<Option<Invite>> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invites WHERE token_hash = $1 AND accepted_ms IS NULL AND expires_ms > $2"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut invite = from_row(&row)?;
        if invite.email != email {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE invites SET accepted_ms = $1 WHERE id = $2 AND accepted_ms IS NULL",
        )
        .bind(now)
        .bind(&invite.id)
        .execute(&mut **tx)
        .await?;
        if marked.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(&invite.tenant_id)
        .bind(user_id)
        .fetch_one(&mut **tx)
        .await?;
        if exists == 0 {
            sqlx::query(
                "INSERT INTO memberships (tenant_id, user_id, role, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&invite.tenant_id)
            .bind(user_id)
            .bind(invite.role.as_str())
            .bind(created_ms())
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        invite.accepted_ms = Some(now);
        Ok(Some(invite))
    }
}
