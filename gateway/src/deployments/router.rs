//! Each gateway's table of private deployments: organization and name → the deployment and a
//! pool over its ready replicas. Refreshed from the database every reconcile interval (and at
//! once after a change made through this gateway), so every replica of the gateway routes the
//! same way whichever one runs the driver.
//!
//! A request whose `model` names one of its organization's deployments goes to that
//! deployment's replicas and nowhere else; when none serves, it gets 503
//! `deployment_not_ready` naming the state, unless the deployment overflows to the shared pool.
//! A name no deployment of the caller's organization has is looked up among the shared models
//! (another organization's deployment is not found: 404 `model_not_found`, as for any name).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use protocol::{SamplingDefaults, ServedModel};

use super::State;
use crate::error::{ApiError, Code};
use crate::registry::ModelEntry;
use crate::store::deployments::Deployment;
use crate::store::{Store, StoreResult, TenantId};
use crate::worker::{Members, RemoteModel, Routing, Timeouts, WorkerPool};

/// A shared model a deployment can be made of.
#[derive(Debug, Clone)]
pub struct BaseModel {
    pub name: String,
    pub path: PathBuf,
    pub max_model_len: Option<usize>,
    pub defaults: SamplingDefaults,
}

impl BaseModel {
    /// The name a worker started with `--model <path>` serves the file under.
    pub fn worker_name(&self) -> String {
        ModelEntry::from_model_path(Some(&self.path)).name
    }
}

/// The models of `entries` whose weights this host can run (not those an OpenAI-compatible
/// upstream serves).
pub fn base_models(entries: &[ModelEntry]) -> Vec<BaseModel> {
    entries
        .iter()
        .filter(|e| e.openai.is_none())
        .map(|e| BaseModel {
            name: e.name.clone(),
            path: e.weights(),
            max_model_len: e.max_model_len,
            defaults: e.default_sampling.clone(),
        })
        .collect()
}

struct Routed {
    deployment: Deployment,
    /// `None` when the model's tokenizer could not be read (the deployment cannot serve).
    model: Option<Arc<RemoteModel>>,
}

/// Where a request's `model` goes.
pub enum Resolved {
    /// Not one of the organization's deployments: a shared model's name (or nothing).
    NotADeployment,
    /// The deployment's own replicas.
    Own(Arc<dyn ServedModel>),
    /// The deployment does not serve now but overflows to this shared model.
    Shared(String),
}

pub struct DeploymentRouter {
    store: Store,
    bases: Vec<BaseModel>,
    token: Option<String>,
    table: RwLock<HashMap<(TenantId, String), Arc<Routed>>>,
}

impl DeploymentRouter {
    /// A router for deployments made of `bases`, sending `token` to their replicas.
    pub fn new(store: Store, bases: Vec<BaseModel>, token: Option<String>) -> Self {
        DeploymentRouter {
            store,
            bases,
            token,
            table: RwLock::new(HashMap::new()),
        }
    }

    /// The shared model a deployment may be made of, by name (case-insensitive).
    pub fn base(&self, name: &str) -> Option<&BaseModel> {
        self.bases
            .iter()
            .find(|b| b.name.eq_ignore_ascii_case(name))
    }

    pub fn bases(&self) -> &[BaseModel] {
        &self.bases
    }

    /// The token the replicas want from their callers.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Reads every deployment that is not deleted and rebuilds the table, keeping the pools of
    /// deployments it had (their routing state) and pointing each at the ready replicas.
    pub async fn refresh(&self) -> StoreResult<()> {
        let live: Vec<&str> = State::ALL
            .iter()
            .filter(|s| **s != State::Deleted)
            .map(|s| s.as_str())
            .collect();
        let deployments = self.store.deployments_in(&live).await?;
        let old: HashMap<String, Option<Arc<RemoteModel>>> = self
            .table
            .read()
            .unwrap()
            .values()
            .map(|r| (r.deployment.id.clone(), r.model.clone()))
            .collect();
        let mut table = HashMap::with_capacity(deployments.len());
        for d in deployments {
            let model = match old.get(&d.id) {
                Some(Some(model)) => Some(model.clone()),
                _ => self.model_for(&d),
            };
            if let Some(model) = &model {
                let serving = State::parse(&d.state).is_some_and(State::serves);
                model.pool().set_members(if serving {
                    d.endpoints.clone()
                } else {
                    Vec::new()
                });
            }
            let key = (d.tenant_id.clone(), d.name.to_ascii_lowercase());
            table.insert(
                key,
                Arc::new(Routed {
                    deployment: d,
                    model,
                }),
            );
        }
        *self.table.write().unwrap() = table;
        Ok(())
    }

    fn model_for(&self, d: &Deployment) -> Option<Arc<RemoteModel>> {
        let base = self.base(&d.model)?;
        let text = match engine::TextModel::load(&base.path) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(deployment = %d.id, path = %base.path.display(), error = %e,
                    "cannot read the tokenizer of a deployment's model");
                return None;
            }
        };
        let pool = WorkerPool::new(
            Members::Managed,
            self.token.clone(),
            Timeouts::default(),
            Routing::PrefixAffinity,
        )
        .ok()?;
        let max_model_len = match (d.max_model_len, base.max_model_len) {
            (Some(own), Some(base)) => Some((own as usize).min(base)),
            (Some(own), None) => Some(own as usize),
            (None, base) => base,
        };
        let model = RemoteModel::new(
            d.name.clone(),
            text,
            max_model_len,
            base.defaults.clone(),
            pool,
        )
        .with_worker_model(base.worker_name())
        .with_price_key(price_key(&d.id));
        Some(Arc::new(model))
    }

    /// Where `name` goes for `tenant`'s requests.
    pub fn resolve(&self, tenant: &TenantId, name: &str) -> Result<Resolved, ApiError> {
        let routed = self
            .table
            .read()
            .unwrap()
            .get(&(tenant.clone(), name.to_ascii_lowercase()))
            .cloned();
        let Some(routed) = routed else {
            return Ok(Resolved::NotADeployment);
        };
        let d = &routed.deployment;
        let serving = State::parse(&d.state).is_some_and(State::serves) && !d.endpoints.is_empty();
        match (&routed.model, serving) {
            (Some(model), true) => Ok(Resolved::Own(model.clone())),
            _ if d.overflow == "shared" => Ok(Resolved::Shared(d.model.clone())),
            _ => Err(ApiError::Unavailable {
                message: not_ready_message(d),
                code: Code::DeploymentNotReady,
                retry_after: matches!(d.state.as_str(), "provisioning" | "scaling" | "ready")
                    .then_some(5),
            }),
        }
    }

    /// The organization's deployments that serve now (for `/v1/models`).
    pub fn serving(&self, tenant: &TenantId) -> Vec<(String, u64)> {
        let table = self.table.read().unwrap();
        let mut out: Vec<(String, u64)> = table
            .values()
            .filter(|r| &r.deployment.tenant_id == tenant)
            .filter(|r| State::parse(&r.deployment.state).is_some_and(State::serves))
            .map(|r| {
                (
                    r.deployment.name.clone(),
                    (r.deployment.created_ms / 1000) as u64,
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// The price catalog's entry for a deployment's tokens (free unless an operator prices it).
pub fn price_key(deployment_id: &str) -> String {
    format!("deployment:{deployment_id}")
}

fn not_ready_message(d: &Deployment) -> String {
    let why = match d.state.as_str() {
        "requested" => "is waiting for approval".to_owned(),
        "rejected" => "was rejected".to_owned(),
        "provisioning" => "is starting its replicas; retry shortly".to_owned(),
        "ready" | "scaling" => "has no ready replica at the moment; retry shortly".to_owned(),
        "stopping" | "stopped" => format!(
            "is {}; start it with POST /v1/organization/deployments/{}/start",
            d.state, d.id
        ),
        "failed" => format!(
            "failed ({}); start it again with POST /v1/organization/deployments/{}/start",
            d.status_message.as_deref().unwrap_or("no reason recorded"),
            d.id
        ),
        other => format!("is {other}"),
    };
    format!("Deployment '{}' {why} (state: {}).", d.name, d.state)
}
