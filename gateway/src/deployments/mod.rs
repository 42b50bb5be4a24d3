//! Private (dedicated) deployments: an organization's own replicas of a served model, which
//! only its keys reach (by the deployment's name in `model`), with their own queue, KV cache
//! and prefix cache, and reserved capacity charged per replica-hour.
//!
//! Lifecycle (every transition is a row of the deployment's history and an audit entry):
//!
//! ```text
//! requested ──approve──▶ provisioning ──replicas ready──▶ ready ◀──▶ scaling
//!     │ reject                │ timeout / driver error      │ stop
//!     ▼                       ▼                             ▼
//! rejected                 failed ──start──▶ provisioning  stopping ──▶ stopped ──start──▶ provisioning
//! any but deleted ──delete──▶ deleting ──▶ deleted
//! ```
//!
//! Files: `driver` (the trait that runs replicas, and `local`: `starfire worker` processes on
//! this host), `reconciler` (moves deployments toward what they ask for, reads back what runs,
//! charges capacity), `router` (each gateway's table of deployments, refreshed from the
//! database, which the inference routes consult before the shared models).

pub mod driver;
pub mod kubernetes;
pub mod local;
pub mod reconciler;
pub mod router;

use std::path::PathBuf;

use serde::Deserialize;

pub use router::DeploymentRouter;

/// A deployment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DeploymentState)]
pub enum State {
    Requested,
    Rejected,
    Provisioning,
    Ready,
    Scaling,
    Stopping,
    Stopped,
    Deleting,
    Deleted,
    Failed,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Requested,
        State::Rejected,
        State::Provisioning,
        State::Ready,
        State::Scaling,
        State::Stopping,
        State::Stopped,
        State::Deleting,
        State::Deleted,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Rejected => "rejected",
            State::Provisioning => "provisioning",
            State::Ready => "ready",
            State::Scaling => "scaling",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Replicas should run (the driver keeps them up).
    pub fn runs(self) -> bool {
        matches!(self, State::Provisioning | State::Ready | State::Scaling)
    }

    /// Requests are served and reserved capacity is charged.
    pub fn serves(self) -> bool {
        matches!(self, State::Ready | State::Scaling)
    }
}

/// The states a transition may start from, as the store wants them.
pub fn names(states: &[State]) -> Vec<&'static str> {
    states.iter().map(|s| s.as_str()).collect()
}

/// Who approves a new deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// A platform operator (`/v1/billing/admin/deployments/{id}/approve`).
    #[default]
    Operator,
    /// Nobody: a request starts provisioning at once (a private installation).
    Auto,
}

/// What runs the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// `starfire worker` processes on this host, supervised by this process.
    #[default]
    Local,
    /// A Deployment and a headless Service per deployment on the cluster this process runs
    /// in (or its kubeconfig's), with `[deployments.kubernetes]`.
    Kubernetes,
    /// This process runs no driver (another gateway replica does): it only routes.
    None,
}

/// The `[deployments]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    pub driver: DriverKind,
    pub approval: Approval,
    /// What one replica costs for one hour, in micro-USD (default $0.50).
    pub replica_hour_micros: i64,
    /// The billing period of reserved capacity (default an hour); each ends with a charge of
    /// replicas × its length × `replica_hour_micros`.
    pub billing_period_secs: u64,
    /// A deployment whose replicas are not all ready this long after provisioning began fails.
    pub ready_timeout_secs: u64,
    /// How often the reconciler looks (and each gateway refreshes its routing table).
    pub reconcile_interval_ms: u64,
    /// Most replicas of one deployment.
    pub max_replicas: i64,
    /// Most deployments (not deleted) per organization.
    pub max_per_organization: i64,
    /// Default bytes of KV cache per replica.
    pub kv_cache_memory: u64,
    /// The `starfire` executable that runs replicas (default: this one).
    pub worker_command: Option<PathBuf>,
    /// The address replicas listen on (each on a free port).
    pub worker_host: String,
    /// Seconds a replica that is scaled away or stopped may take to finish its requests.
    pub drain_timeout_secs: u64,
    /// `local`: the CPUs reserved for deployments' replicas (`"4-7,12"`); each replica is
    /// pinned to `cpus_per_replica` of them that no other replica holds, and runs that many
    /// engine threads, so a deployment's compute is its own. Unset: replicas are not pinned.
    pub cpu_pool: Option<String>,
    /// CPUs each pinned replica holds (with `cpu_pool`; default 1).
    pub cpus_per_replica: usize,
    /// Autoscaling of a deployment whose replicas' `max` is above its `min`: the requests
    /// running and waiting on its replicas (their `/metrics`) over this many per replica is
    /// the count it wants (default 8; see `reconciler`).
    pub autoscale_target_load: f64,
    /// Autoscaling adds replicas at once but removes them only after the load has wanted fewer
    /// for this long (default 300).
    pub scale_down_delay_secs: u64,
    /// The `kubernetes` driver's settings.
    pub kubernetes: kubernetes::KubernetesConfig,
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        DeploymentsConfig {
            driver: DriverKind::Local,
            approval: Approval::Operator,
            replica_hour_micros: 500_000,
            billing_period_secs: 3600,
            ready_timeout_secs: 300,
            reconcile_interval_ms: 1000,
            max_replicas: 8,
            max_per_organization: 10,
            kv_cache_memory: 64 << 20,
            worker_command: None,
            worker_host: "127.0.0.1".to_owned(),
            drain_timeout_secs: 60,
            cpu_pool: None,
            cpus_per_replica: 1,
            autoscale_target_load: 8.0,
            scale_down_delay_secs: 300,
            kubernetes: kubernetes::KubernetesConfig::default(),
        }
    }
}

impl DeploymentsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.replica_hour_micros < 0 {
            return Err("replica_hour_micros must not be negative".into());
        }
        if self.billing_period_secs == 0
            || self.ready_timeout_secs == 0
            || self.reconcile_interval_ms == 0
        {
            return Err(
                "billing_period_secs, ready_timeout_secs and reconcile_interval_ms must be above zero"
                    .into(),
            );
        }
        if self.max_replicas < 1 || self.max_per_organization < 1 || self.kv_cache_memory == 0 {
            return Err(
                "max_replicas, max_per_organization and kv_cache_memory must be above zero".into(),
            );
        }
        if !(self.autoscale_target_load.is_finite() && self.autoscale_target_load > 0.0) {
            return Err("autoscale_target_load must be a number above zero".into());
        }
        if let Some(pool) = &self.cpu_pool {
            let cpus = parse_cpu_list(pool)?;
            if self.cpus_per_replica == 0 || self.cpus_per_replica > cpus.len() {
                return Err(format!(
                    "cpus_per_replica must be 1 to the {} CPUs of cpu_pool",
                    cpus.len()
                ));
            }
        }
        if self.worker_host.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "worker_host '{}' must be an IP address",
                self.worker_host
            ));
        }
        Ok(())
    }
}

/// A CPU list as Linux writes it (`"0-3,8,10-11"`), in order, without repeats.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("'{list}' is not a CPU list such as \"2-5,8\"");
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| bad())?;
        let last: usize = last.parse().map_err(|_| bad())?;
        if first > last || last >= 1024 {
            return Err(bad());
        }
        for cpu in first..=last {
            if !cpus.contains(&cpu) {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// What the driver and reconciler tests start from: a store in a temporary SQLite file, a
/// router whose one deployable model is `base`, and a deployment `mine` of it with `replicas`
/// replicas, provisioning.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::router::BaseModel;
    use super::DeploymentRouter;
    use crate::store::deployments::{Deployment, NewDeployment};
    use crate::store::tenants::Plan;
    use crate::store::Store;

    pub(crate) struct Setup {
        pub _dir: tempfile::TempDir,
        pub store: Store,
        pub router: Arc<DeploymentRouter>,
        pub deployment: Deployment,
    }

    pub(crate) async fn provisioning(replicas: i64) -> Setup {
        provisioning_range(replicas, replicas).await
    }

    /// The same with `min` to `max` replicas.
    pub(crate) async fn provisioning_range(min: i64, max: i64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let tenant = store.create_tenant("Acme", Plan::Free).await.unwrap();
        let base = BaseModel {
            name: "base".into(),
            path: dir.path().join("missing.gguf"),
            max_model_len: None,
            defaults: Default::default(),
        };
        let router = Arc::new(DeploymentRouter::new(store.clone(), vec![base], None));
        let deployment = store
            .create_deployment(&NewDeployment {
                tenant_id: &tenant.id,
                name: "mine",
                model: "base",
                hardware: "cpu",
                replicas_min: min,
                replicas_max: max,
                kv_cache_memory: 1 << 20,
                max_model_len: None,
                overflow: "none",
                state: "provisioning",
                created_by: "test",
            })
            .await
            .unwrap();
        Setup {
            _dir: dir,
            store,
            router,
            deployment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_linux_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8, 10-11").unwrap(),
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("5").unwrap(), [5]);
        assert_eq!(parse_cpu_list("1,1-2").unwrap(), [1, 2]);
        for bad in ["", "a", "3-1", "1-", "2048"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
