//! Starfire's database layer: every read and write of accounts, usage, credits and billing goes
//! through [`Store`]. It knows nothing of HTTP: the gateway maps its errors to answers.
//!
//! One code path serves SQLite and PostgreSQL through sqlx's `Any` driver; the SQL is the dialect
//! both share (`$n` placeholders, TEXT ids, BIGINT millisecond times). Every query that touches a
//! tenant's data takes the tenant id and filters on it, so a resource of another tenant is
//! indistinguishable from one that does not exist.
//!
//! Files by resource: `tenants`, `users` (users and memberships), `projects`, `api_keys`,
//! `sessions` (refresh-token families), `invites`, `audit`, `ws_tickets` (single-use WebSocket
//! tickets), `usage` (usage events and their rollup), `credits` (prepaid ledger), `budgets` (spend caps), `prices` (the
//! dated price catalog), `invoices` (statements, finalized once), `rate_limits` (what the
//! limiter reads per request), and `page` (cursor pagination). The values its rows hold live
//! here too: `money` (integer micro-dollars and per-model prices), `period` (calendar months
//! for budgets and invoices) and `secret` (random ids and secrets, hashes, constant-time
//! comparison). A schema change is a new file under `store/migrations/`.

pub mod api_keys;
pub mod audit;
pub mod budgets;
pub mod credits;
pub mod deployments;
pub mod idempotency;
pub mod invites;
pub mod invoices;
pub mod page;
pub mod prices;
pub mod projects;
pub mod rate_limits;
pub mod sessions;
pub mod stripe;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod ws_tickets;

mod group_commit;

pub mod ids;
pub mod money;
pub mod period;
pub mod secret;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

pub use ids::{KeyId, ProjectId, TenantId, UserId};
pub use page::{Page, PageRequest};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err("database_url must start with sqlite: or postgres:".to_owned())
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database; cheap to clone (it wraps a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's one writer at a time, taken in process before `BEGIN IMMEDIATE` (see
    /// [`Store::begin_write`]).
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Metering writes waiting for that turn (SQLite: `group_commit`).
    group: Arc<group_commit::GroupCommit>,
}

/// A transaction that writes ([`Store::begin_write`]): the transaction itself (`&mut **tx`
/// executes on it) and, on SQLite, this process's writer turn, held until it ends.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::Transaction<'static, sqlx::Any>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store {
    /// Connects and applies pending migrations. For SQLite the file is created when missing.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_str(url).map_err(StoreError::InvalidUrl)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            // A database that is down makes requests fail fast (503), not wait half a minute.
            .acquire_timeout(std::time::Duration::from_secs(5))
            // A pooled SQLite connection is a file handle that cannot go stale: pinging it
            // before each use only cost every query a round trip to its thread. A PostgreSQL
            // connection can (a restarted server), so it is checked before it is handed out.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // With the write-ahead log, a commit appends to the log without an
                        // fsync (the log is synced at checkpoints): a power loss can lose the
                        // last commits but never corrupts the file, and an application crash
                        // loses nothing. The rollback journal's default fsyncs every commit
                        // several times, which made each metered request wait on the disk.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            // Persistent in the file: readers no longer block the writer, nor it them.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            write_turn: Arc::default(),
            group: Arc::default(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock when it begins (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes while another connection
    /// commits fails at once with "database is locked" (no busy wait can save it), where this
    /// one waits its turn (`busy_timeout`). PostgreSQL's row locks need nothing more.
    ///
    /// Writers of this process wait for their turn here rather than in SQLite: its busy
    /// handler polls the lock with sleeps of 1 to 100 ms, so under load each waiting writer
    /// slept far longer than the transaction ahead of it took; a queued turn is handed over
    /// the moment the previous transaction ends. Another process (a second gateway on the same
    /// file) still waits through `busy_timeout`.
    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let turn = match self.backend {
            Backend::Sqlite => Some(Arc::clone(&self.write_turn).lock_owned().await),
            Backend::Postgres => None,
        };
        Ok(WriteTx {
            tx: self.begin_in_turn().await?,
            _turn: turn,
        })
    }

    /// [`Store::begin_write`]'s transaction, for a caller that holds the writer's turn.
    pub(crate) async fn begin_in_turn(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch: the unit of every time column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The creation time of a new row: wall-clock milliseconds, but strictly increasing within
/// this process, so rows created in the same millisecond still list in creation order (lists
/// order by `(created_ms, id)`).
pub fn created_ms() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The API speaks Unix seconds, like OpenAI's.
pub fn ms_to_secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) type Row = AnyRow;
