//! Users (console accounts) and their memberships in tenants, with a role each.

use crate::ids::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use super::page::{Listing, Page, PageRequest};
use super::tenants::{tenant_from_row, Tenant};
use super::{created_ms, is_unique_violation, now_ms, Row, Store, StoreError, StoreResult};
use crate::secret::new_id;

/// A member's role in a tenant, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Billing,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Billing => "billing",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Owner,
            Role::Admin,
            Role::Developer,
            Role::Billing,
            Role::Viewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_ms: i64,
}

/// A user as a member of one tenant.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub added_ms: i64,
}

fn user_from_row(row: &Row) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn member_from_row(row: &Row) -> StoreResult<Member> {
    let role: String = row.try_get("role")?;
    Ok(Member {
        user_id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        added_ms: row.try_get("created_ms")?,
    })
}

const MEMBER_COLUMNS: &str = "id, email, name, role, created_ms";

impl Store {
    /// Creates a user; the email must be normalized (trimmed, lower-case) by the caller.
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
    ) -> StoreResult<User> {
        let user = User {
            id: UserId::from(new_id("user")),
            email: email.to_owned(),
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            created_ms: created_ms(),
        };
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.created_ms)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("A user with this email already exists.".to_owned())
            } else {
                e.into()
            }
        })?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_ms FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user(&self, user_id: &UserId) -> StoreResult<User> {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_ms FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No user found with id '{user_id}'.")))?;
        user_from_row(&row)
    }

    pub async fn add_member(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO memberships (tenant_id, user_id, role, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(created_ms())
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("The user is already a member of this organization.".into())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// The member `user_id` of `tenant_id`; NotFound when the user is not a member.
    pub async fn member(&self, tenant_id: &TenantId, user_id: &UserId) -> StoreResult<Member> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No user found with id '{user_id}'.")))?;
        member_from_row(&row)
    }

    pub async fn member_by_email(
        &self,
        tenant_id: &TenantId,
        email: &str,
    ) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND email = $2"
        ))
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    pub async fn list_members(
        &self,
        tenant_id: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Member>> {
        let listing = Listing {
            columns: MEMBER_COLUMNS,
            table: "members",
            filter: "",
            binds: &[],
            newest_first: false,
            from_row: member_from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Changes a member's role, refusing to leave the tenant without an owner.
    pub async fn set_role(
        &self,
        tenant_id: &TenantId,
        user_id: &UserId,
        role: Role,
    ) -> StoreResult<Member> {
        let mut tx = self.begin_write().await?;
        lock_tenant(&mut tx, tenant_id).await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        let current = current
            .ok_or_else(|| StoreError::NotFound(format!("No user found with id '{user_id}'.")))?;
        if current == Role::Owner.as_str() && role != Role::Owner {
            ensure_another_owner(&mut tx, tenant_id).await?;
        }
        sqlx::query("UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        self.member(tenant_id, user_id).await
    }

    /// Removes a member (and ends their sessions in this tenant), refusing to remove the last
    /// owner.
    pub async fn remove_member(&self, tenant_id: &TenantId, user_id: &UserId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        lock_tenant(&mut tx, tenant_id).await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        let current = current
            .ok_or_else(|| StoreError::NotFound(format!("No user found with id '{user_id}'.")))?;
        if current == Role::Owner.as_str() {
            ensure_another_owner(&mut tx, tenant_id).await?;
        }
        sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE session_families SET revoked_ms = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenants a user belongs to, oldest membership first.
    pub async fn tenants_of_user(&self, user_id: &UserId) -> StoreResult<Vec<(Tenant, Role)>> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.plan, t.created_ms, m.role FROM memberships m \
             JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 \
             ORDER BY m.created_ms, t.id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok((
                    tenant_from_row(row)?,
                    Role::parse(&role).unwrap_or(Role::Viewer),
                ))
            })
            .collect()
    }
}

/// Serializes membership changes of one tenant, portably: the no-op update takes the row lock
/// in PostgreSQL and the write lock in SQLite, so two concurrent demotions cannot both see
/// "another owner remains".
async fn lock_tenant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &TenantId,
) -> StoreResult<()> {
    sqlx::query("UPDATE tenants SET name = name WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn ensure_another_owner(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &TenantId,
) -> StoreResult<()> {
    let owners: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'",
    )
    .bind(tenant_id)
    .fetch_one(&mut **tx)
    .await?;
    if owners <= 1 {
        return Err(StoreError::Conflict(
            "An organization must keep at least one owner.".to_owned(),
        ));
    }
    Ok(())
}
