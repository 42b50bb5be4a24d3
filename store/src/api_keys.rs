//! API keys: project keys (`sf-...`) and organization admin keys (`sf-admin-...`). Only the
//! SHA-256 of a key and a short visible prefix are stored.

use crate::ids::{KeyId, ProjectId, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use super::page::{Listing, Page, PageRequest};
use super::rate_limits::{context_from_row, RateLimitContext, CONTEXT_COLUMNS, CONTEXT_JOINS};
use super::{created_ms, now_ms, Row, Store, StoreError, StoreResult};
use crate::secret::{constant_time_eq, new_id};

/// Which kind of key a row holds: a project's inference key or an organization admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Project,
    Admin,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Project => "project",
            KeyKind::Admin => "admin",
        }
    }
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Call the inference endpoints (`/v1/chat/completions`, ...).
    #[serde(rename = "inference")]
    Inference,
    /// Read usage of the key's project.
    #[serde(rename = "usage:read")]
    UsageRead,
    /// Manage the key's own project (its keys); on admin keys, the whole organization.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::UsageRead => "usage:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::Inference, Scope::UsageRead, Scope::Admin]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// Rate-limit overrides of an API key or a project. `null` (or absent) falls back to the next
/// level: key → project → the organization's plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
// Read by `ToSchema` (the schema's `additionalProperties: false`); `KeyLimitsFields` refuses.
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// Requests per minute.
    #[schema(minimum = 1)]
    pub rpm: Option<i64>,
    /// Tokens per minute (prompt plus `max_tokens` reserved at admission, corrected at the end).
    #[schema(minimum = 1)]
    pub tpm: Option<i64>,
    /// Requests in flight at once.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub concurrency: Option<i64>,
}

/// The fields of `KeyLimits` as they are read, from a JSON object only: serde's derive would
/// also take them positionally from an array (`[null, null]`), which the schema does not allow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyLimitsFields {
    rpm: Option<i64>,
    tpm: Option<i64>,
    #[serde(default)]
    concurrency: Option<i64>,
}

impl<'de> Deserialize<'de> for KeyLimits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = KeyLimits;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with rpm, tpm and concurrency")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<KeyLimits, A::Error> {
                let f = KeyLimitsFields::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(KeyLimits {
                    rpm: f.rpm,
                    tpm: f.tpm,
                    concurrency: f.concurrency,
                })
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// Who created a key: a console user or another key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub project_id: Option<ProjectId>,
    pub kind: KeyKind,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub owner: Owner,
    pub limits: KeyLimits,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// Everything needed to store a new key; `hash` and `prefix` come from `auth::api_key::generate`.
pub struct NewApiKey<'a> {
    pub tenant_id: &'a TenantId,
    pub project_id: Option<&'a ProjectId>,
    pub kind: KeyKind,
    pub name: &'a str,
    pub hash: &'a str,
    pub prefix: &'a str,
    pub scopes: &'a [Scope],
    pub owner: &'a Owner,
    pub limits: KeyLimits,
    pub expires_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, tenant_id, project_id, kind, name, key_hash, prefix, scopes, owner_type, owner_id, \
     limit_rpm, limit_tpm, limit_concurrency, created_ms, expires_ms, last_used_ms, revoked_ms";

/// A key that authenticates: not revoked, not expired (`$2` is now), and for a project key its
/// project not archived. For a query over `api_keys k`.
const LIVE: &str = "revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $2) \
     AND (project_id IS NULL OR EXISTS (SELECT 1 FROM projects p \
          WHERE p.id = k.project_id AND p.tenant_id = k.tenant_id AND p.archived_ms IS NULL))";

/// `last_used_at` is written at most this often per key, to keep authentication read-mostly.
const TOUCH_INTERVAL_MS: i64 = 60_000;

fn from_row(row: &Row) -> StoreResult<ApiKeyRecord> {
    let kind: String = row.try_get("kind")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        project_id: row.try_get("project_id")?,
        kind: if kind == "admin" {
            KeyKind::Admin
        } else {
            KeyKind::Project
        },
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        prefix: row.try_get("prefix")?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        owner: Owner {
            kind: row.try_get("owner_type")?,
            id: row.try_get("owner_id")?,
        },
        limits: KeyLimits {
            rpm: row.try_get("limit_rpm")?,
            tpm: row.try_get("limit_tpm")?,
            concurrency: row.try_get("limit_concurrency")?,
        },
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

/// Which keys a lookup may see: the admin keys of the tenant, or the keys of one project.
#[derive(Debug, Clone, Copy)]
pub enum KeyOwner<'a> {
    Admin,
    Project(&'a str),
}

impl KeyOwner<'_> {
    fn filter(&self) -> (&'static str, Option<&str>) {
        match self {
            KeyOwner::Admin => ("AND kind = 'admin' AND revoked_ms IS NULL", None),
            KeyOwner::Project(p) => (
                "AND kind = 'project' AND project_id = $2 AND revoked_ms IS NULL",
                Some(p),
            ),
        }
    }
}

fn not_found(key_id: &KeyId) -> StoreError {
    StoreError::NotFound(format!("No API key found with id '{key_id}'."))
}

impl Store {
    pub async fn create_api_key(&self, new: NewApiKey<'_>) -> StoreResult<ApiKeyRecord> {
        let record = ApiKeyRecord {
            id: KeyId::new(new_id("key")),
            tenant_id: new.tenant_id.to_owned(),
            project_id: new.project_id.cloned(),
            kind: new.kind,
            name: new.name.to_owned(),
            key_hash: new.hash.to_owned(),
            prefix: new.prefix.to_owned(),
            scopes: new.scopes.to_vec(),
            owner: new.owner.clone(),
            limits: new.limits,
            created_ms: created_ms(),
            expires_ms: new.expires_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        let scopes: Vec<&str> = record.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, project_id, kind, name, key_hash, prefix, scopes, \
             owner_type, owner_id, limit_rpm, limit_tpm, limit_concurrency, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.project_id)
        .bind(record.kind.as_str())
        .bind(&record.name)
        .bind(&record.key_hash)
        .bind(&record.prefix)
        .bind(scopes.join(" "))
        .bind(&record.owner.kind)
        .bind(&record.owner.id)
        .bind(record.limits.rpm)
        .bind(record.limits.tpm)
        .bind(record.limits.concurrency)
        .bind(record.created_ms)
        .bind(record.expires_ms)
        .execute(self.pool())
        .await?;
        Ok(record)
    }

    /// A live (not revoked) key of the tenant, seen through `owner`.
    pub async fn api_key(
        &self,
        tenant_id: &TenantId,
        owner: KeyOwner<'_>,
        key_id: &KeyId,
    ) -> StoreResult<ApiKeyRecord> {
        let (filter, project) = owner.filter();
        let id_param = if project.is_some() { "$3" } else { "$2" };
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 {filter} AND id = {id_param}"
        );
        let mut q = sqlx::query(&sql).bind(tenant_id);
        if let Some(p) = project {
            q = q.bind(p);
        }
        let row = q
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| not_found(key_id))?;
        from_row(&row)
    }

    pub async fn list_api_keys(
        &self,
        tenant_id: &TenantId,
        owner: KeyOwner<'_>,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKeyRecord>> {
        let (filter, project) = owner.filter();
        let binds: Vec<&str> = project.into_iter().collect();
        let listing = Listing {
            columns: COLUMNS,
            table: "api_keys",
            filter,
            binds: &binds,
            newest_first: false,
            from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Renames a live key and/or replaces its limits.
    pub async fn update_api_key(
        &self,
        tenant_id: &TenantId,
        owner: KeyOwner<'_>,
        key_id: &KeyId,
        name: Option<&str>,
        limits: Option<KeyLimits>,
    ) -> StoreResult<ApiKeyRecord> {
        let record = self.api_key(tenant_id, owner, key_id).await?;
        let name = name.unwrap_or(&record.name);
        let limits = limits.unwrap_or(record.limits);
        sqlx::query(
            "UPDATE api_keys SET name = $1, limit_rpm = $2, limit_tpm = $3, limit_concurrency = $4 \
             WHERE tenant_id = $5 AND id = $6 AND revoked_ms IS NULL",
        )
        .bind(name)
        .bind(limits.rpm)
        .bind(limits.tpm)
        .bind(limits.concurrency)
        .bind(tenant_id)
        .bind(key_id)
        .execute(self.pool())
        .await?;
        self.api_key(tenant_id, owner, key_id).await
    }

    /// Revokes a key: from this moment on it authenticates nothing.
    pub async fn revoke_api_key(
        &self,
        tenant_id: &TenantId,
        owner: KeyOwner<'_>,
        key_id: &KeyId,
    ) -> StoreResult<ApiKeyRecord> {
        let record = self.api_key(tenant_id, owner, key_id).await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(key_id)
        .execute(self.pool())
        .await?;
        Ok(record)
    }

    /// The live key whose SHA-256 is `key_hash`: not revoked, not expired, and for a project key
    /// its project not archived. Records the use (`last_used_at`, at most once a minute).
    pub async fn authenticate_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        Ok(self
            .authenticate_api_key_with_limits(key_hash)
            .await?
            .map(|(record, _)| record))
    }

    /// [`Store::authenticate_api_key`] with what the rate limiter reads for the key's requests
    /// ([`Store::rate_limit_context`]), in the same lookup.
    pub async fn authenticate_api_key_with_limits(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<(ApiKeyRecord, RateLimitContext)>> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT k.*, {CONTEXT_COLUMNS} FROM api_keys k {CONTEXT_JOINS} \
             WHERE key_hash = $1 AND {LIVE}"
        ))
        .bind(key_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let record = from_row(&row)?;
        let context = context_from_row(&row)?;
        // The index lookup already matched; compare again without timing leaks anyway.
        if !constant_time_eq(&record.key_hash, key_hash) {
            return Ok(None);
        }
        if record
            .last_used_ms
            .is_none_or(|t| now - t >= TOUCH_INTERVAL_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(&record.id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some((record, context)))
    }

    /// The key `key_id` of the tenant when it would still authenticate (see
    /// [`Store::authenticate_api_key`]); for credentials that stand in for a key, such as
    /// WebSocket tickets.
    pub async fn live_api_key(
        &self,
        tenant_id: &TenantId,
        key_id: &KeyId,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys k WHERE id = $1 AND {LIVE} AND tenant_id = $3"
        ))
        .bind(key_id)
        .bind(now_ms())
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
