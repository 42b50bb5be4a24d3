//! What runs a deployment's replicas: one trait, so the reconciler does not care whether they
//! are processes on this host (`local`) or pods on a cluster.

use std::path::PathBuf;

use protocol::BoxFuture;

/// What each replica of a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub deployment_id: String,
    /// The deployment's name (for logs and labels).
    pub name: String,
    /// The weights (a GGUF file or a Hugging Face directory).
    pub model_path: PathBuf,
    /// Bytes of KV cache per replica.
    pub kv_cache_memory: u64,
}

/// One replica as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// `http://host:port`.
    pub url: String,
    /// Answers `/ready` (model loaded, not draining).
    pub ready: bool,
}

/// What runs for one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The replicas meant to serve (not those draining away).
    pub replicas: Vec<Replica>,
    /// Replicas still finishing their requests after a scale-down or stop.
    pub draining: usize,
    /// Why a replica cannot run (a crash loop, an image that cannot be pulled), if known: a
    /// provisioning deployment fails with it at once.
    pub problem: Option<String>,
    /// Why a replica is not ready yet (what a timeout reports).
    pub detail: Option<String>,
}

impl Observed {
    pub fn ready(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.ready)
            .map(|r| r.url.clone())
            .collect()
    }

    /// Nothing of the deployment runs any more.
    pub fn gone(&self) -> bool {
        self.replicas.is_empty() && self.draining == 0
    }
}

/// Runs replicas.
pub trait Driver: Send + Sync {
    /// Makes `replicas` replicas of `spec` run: starts missing ones, drains extra ones
    /// (highest first), restarts dead ones (with backoff). Idempotent.
    fn apply(&self, spec: &ReplicaSpec, replicas: usize) -> BoxFuture<'_, Result<(), String>>;
    /// Drains and removes every replica of the deployment. Idempotent.
    fn remove(&self, deployment_id: &str) -> BoxFuture<'_, Result<(), String>>;
    /// What runs for the deployment now; an error when it cannot be known (the cluster's API
    /// did not answer), so that nothing is concluded from it.
    fn observe(&self, deployment_id: &str) -> BoxFuture<'_, Result<Observed, String>>;
}
