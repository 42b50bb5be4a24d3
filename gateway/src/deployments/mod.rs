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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        if self.worker_host.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "worker_host '{}' must be an IP address",
                self.worker_host
            ));
        }
        Ok(())
    }
}
