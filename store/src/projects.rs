//! Projects of a tenant (what OpenAI calls projects and Spark calls apps). API keys belong to a
//! project; archiving a project turns its keys off.

use crate::ids::{ProjectId, TenantId};
use sqlx::Row as _;

use super::api_keys::KeyLimits;
use super::page::{Listing, Page, PageRequest};
use super::{created_ms, now_ms, Row, Store, StoreError, StoreResult};
use crate::secret::new_id;

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_ms: i64,
    pub archived_ms: Option<i64>,
    /// Rate-limit overrides for all the project's keys together.
    pub limits: KeyLimits,
    /// The browser origins allowed to call the API with the project's keys (CORS); empty: none.
    pub allowed_origins: Vec<String>,
}

const COLUMNS: &str = "id, tenant_id, name, created_ms, archived_ms, limit_rpm, limit_tpm, \
                       limit_concurrency, allowed_origins";

/// Origins are stored space-separated (an origin never contains a space).
fn split_origins(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn from_row(row: &Row) -> StoreResult<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        created_ms: row.try_get("created_ms")?,
        archived_ms: row.try_get("archived_ms")?,
        limits: KeyLimits {
            rpm: row.try_get("limit_rpm")?,
            tpm: row.try_get("limit_tpm")?,
            concurrency: row.try_get("limit_concurrency")?,
        },
        allowed_origins: split_origins(&row.try_get::<String, _>("allowed_origins")?),
    })
}

fn not_found(project_id: &ProjectId) -> StoreError {
    StoreError::NotFound(format!("No project found with id '{project_id}'."))
}

impl Store {
    pub async fn create_project(&self, tenant_id: &TenantId, name: &str) -> StoreResult<Project> {
        let project = Project {
            id: ProjectId::new(new_id("proj")),
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            created_ms: created_ms(),
            archived_ms: None,
            limits: KeyLimits::default(),
            allowed_origins: Vec::new(),
        };
        sqlx::query(
            "INSERT INTO projects (id, tenant_id, name, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&project.id)
        .bind(&project.tenant_id)
        .bind(&project.name)
        .bind(project.created_ms)
        .execute(self.pool())
        .await?;
        Ok(project)
    }

    pub async fn project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<Project> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM projects WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| not_found(project_id))?;
        from_row(&row)
    }

    /// The tenant's oldest project with this name, if any (bootstrap uses it to stay idempotent).
    pub async fn project_by_name(
        &self,
        tenant_id: &TenantId,
        name: &str,
    ) -> StoreResult<Option<Project>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM projects WHERE tenant_id = $1 AND name = $2 ORDER BY created_ms, id LIMIT 1"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_projects(
        &self,
        tenant_id: &TenantId,
        include_archived: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>> {
        let filter = if include_archived {
            ""
        } else {
            "AND archived_ms IS NULL"
        };
        let listing = Listing {
            columns: COLUMNS,
            table: "projects",
            filter,
            binds: &[],
            newest_first: false,
            from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }

    /// Renames an active project; an archived one is read-only (Conflict).
    pub async fn rename_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        name: &str,
    ) -> StoreResult<Project> {
        let project = self.project(tenant_id, project_id).await?;
        if project.archived_ms.is_some() {
            return Err(StoreError::Conflict(format!(
                "Project '{project_id}' is archived and cannot be modified."
            )));
        }
        sqlx::query("UPDATE projects SET name = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(name)
            .bind(tenant_id)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        self.project(tenant_id, project_id).await
    }

    /// Replaces an active project's rate-limit overrides; an archived one is read-only.
    pub async fn set_project_limits(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        limits: KeyLimits,
    ) -> StoreResult<Project> {
        let project = self.project(tenant_id, project_id).await?;
        if project.archived_ms.is_some() {
            return Err(StoreError::Conflict(format!(
                "Project '{project_id}' is archived and cannot be modified."
            )));
        }
        sqlx::query(
            "UPDATE projects SET limit_rpm = $1, limit_tpm = $2, limit_concurrency = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(limits.rpm)
        .bind(limits.tpm)
        .bind(limits.concurrency)
        .bind(tenant_id)
        .bind(project_id)
        .execute(self.pool())
        .await?;
        self.project(tenant_id, project_id).await
    }

    /// Replaces an active project's allowed browser origins (already validated and
    /// normalized by the caller); an archived one is read-only.
    pub async fn set_project_origins(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
        origins: &[String],
    ) -> StoreResult<Project> {
        let project = self.project(tenant_id, project_id).await?;
        if project.archived_ms.is_some() {
            return Err(StoreError::Conflict(format!(
                "Project '{project_id}' is archived and cannot be modified."
            )));
        }
        sqlx::query("UPDATE projects SET allowed_origins = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(origins.join(" "))
            .bind(tenant_id)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        self.project(tenant_id, project_id).await
    }

    /// Every active project that allows some origin, with its origins (all organizations': the
    /// gateway's CORS table, which answers preflights before any credential is seen).
    pub async fn project_origins(&self) -> StoreResult<Vec<(ProjectId, Vec<String>)>> {
        let rows = sqlx::query(
            "SELECT id, allowed_origins FROM projects \
             WHERE archived_ms IS NULL AND allowed_origins <> ''",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    split_origins(&row.try_get::<String, _>("allowed_origins")?),
                ))
            })
            .collect()
    }

    /// Archives a project (idempotent: archiving twice keeps the first time).
    pub async fn archive_project(
        &self,
        tenant_id: &TenantId,
        project_id: &ProjectId,
    ) -> StoreResult<Project> {
        let done = sqlx::query(
            "UPDATE projects SET archived_ms = $1 WHERE tenant_id = $2 AND id = $3 AND archived_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(project_id)
        .execute(self.pool())
        .await?;
        let _ = done.rows_affected();
        self.project(tenant_id, project_id).await
    }
}
