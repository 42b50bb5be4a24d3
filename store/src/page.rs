//! OpenAI-style cursor pagination: `limit` and `after` in, `has_more` out. Rows are ordered by
//! (created time, id); the cursor is the id of the last row seen, looked up inside the same
//! tenant so a foreign id yields nothing.

use super::{Row, Store, StoreResult};
use crate::ids::TenantId;

/// What the client asked for, already validated (1..=100).
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: 20,
            after: None,
        }
    }
}

/// One page of rows, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub(crate) fn from_overfetch(mut items: Vec<T>, limit: u32) -> Self {
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Page { items, has_more }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}

/// A keyset-paged listing of one tenant's rows: what [`Store::fetch_page`] needs besides the
/// tenant and the page asked for.
pub(crate) struct Listing<'a, T> {
    pub columns: &'a str,
    pub table: &'a str,
    /// Extra conditions after `tenant_id = $1` (`AND ...`), with `$2..` placeholders for `binds`.
    pub filter: &'a str,
    pub binds: &'a [&'a str],
    pub newest_first: bool,
    pub from_row: fn(&Row) -> StoreResult<T>,
}

impl Store {
    /// One page of `listing` for `tenant_id`, the cursor looked up inside the same tenant.
    pub(crate) async fn fetch_page<T>(
        &self,
        tenant_id: &TenantId,
        listing: Listing<'_, T>,
        page: &PageRequest,
    ) -> StoreResult<Page<T>> {
        let sql = query(
            listing.columns,
            listing.table,
            listing.filter,
            listing.binds.len(),
            page,
            listing.newest_first,
        );
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for bind in listing.binds {
            q = q.bind(*bind);
        }
        if let Some(after) = &page.after {
            q = q.bind(after.as_str());
        }
        let rows = q.fetch_all(self.pool()).await?;
        let items = rows
            .iter()
            .map(listing.from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Page::from_overfetch(items, page.limit))
    }
}

/// Builds `SELECT {columns} FROM {table} WHERE tenant_id = $1 {filter} [cursor] ORDER BY ...
/// LIMIT n`. `filter` may use `$2..` placeholders; `binds_in_filter` says how many, so the
/// cursor placeholder comes after them.
pub(crate) fn query(
    columns: &str,
    table: &str,
    filter: &str,
    binds_in_filter: usize,
    page: &PageRequest,
    newest_first: bool,
) -> String {
    let (cmp, dir) = if newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let cursor = if page.after.is_some() {
        let p = binds_in_filter + 2;
        format!(
            " AND (created_ms {cmp} (SELECT c.created_ms FROM {table} c WHERE c.tenant_id = $1 AND c.id = ${p}) \
             OR (created_ms = (SELECT c.created_ms FROM {table} c WHERE c.tenant_id = $1 AND c.id = ${p}) AND id {cmp} ${p}))"
        )
    } else {
        String::new()
    };
    format!(
        "SELECT {columns} FROM {table} WHERE tenant_id = $1 {filter}{cursor} ORDER BY created_ms {dir}, id {dir} LIMIT {}",
        page.limit as u64 + 1
    )
}
