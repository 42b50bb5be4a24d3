//! `starfire admin bootstrap`: the first tenant, its owner, a default project, an inference key
//! and an admin key, in one idempotent step. Running it again reuses the tenant, user and
//! project and mints a fresh pair of keys (keys are stored as hashes, so old ones cannot be
//! shown again).

use serde::Serialize;

use crate::api::validate;
use crate::auth::api_key::{self, KeyKind};
use crate::auth::password;
use crate::error::ApiError;
use crate::store::api_keys::{KeyLimits, NewApiKey, Owner, Scope};
use crate::store::audit::AuditEvent;
use crate::store::tenants::Plan;
use crate::store::users::Role;
use crate::store::{Store, StoreError};

pub const DEFAULT_TENANT: &str = "Starfire";
pub const DEFAULT_PROJECT: &str = "Default project";

#[derive(Debug, Serialize)]
pub struct Bootstrapped {
    pub tenant_id: String,
    pub project_id: String,
    pub api_key: String,
    pub admin_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Invalid(String),
    #[error("the user {0} exists with a different password")]
    WrongPassword(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for BootstrapError {
    fn from(e: ApiError) -> Self {
        BootstrapError::Invalid(e.to_string())
    }
}

pub async fn bootstrap(
    store: &Store,
    email: &str,
    password_text: &str,
    tenant_name: Option<&str>,
) -> Result<Bootstrapped, BootstrapError> {
    let email = validate::email("email", email)?;
    validate::password("password", password_text)?;
    let tenant_name = validate::name("tenant", tenant_name.unwrap_or(DEFAULT_TENANT))?;

    let user = match store.user_by_email(&email).await? {
        Some(user) => {
            if !password::verify(password_text, &user.password_hash) {
                return Err(BootstrapError::WrongPassword(email));
            }
            user
        }
        None => {
            let phc = password::hash(password_text)
                .map_err(|e| BootstrapError::Invalid(e.to_string()))?;
            let name = email.split('@').next().unwrap_or("admin").to_owned();
            store.create_user(&email, &name, &phc).await?
        }
    };
    let owned = store
        .tenants_of_user(&user.id)
        .await?
        .into_iter()
        .find(|(t, role)| *role == Role::Owner && t.name == tenant_name);
    let tenant = match owned {
        Some((tenant, _)) => tenant,
        None => {
            let tenant = store.create_tenant(&tenant_name, Plan::Enterprise).await?;
            store.add_member(&tenant.id, &user.id, Role::Owner).await?;
            tenant
        }
    };
    let project = match store.project_by_name(&tenant.id, DEFAULT_PROJECT).await? {
        Some(p) if p.archived_ms.is_none() => p,
        _ => store.create_project(&tenant.id, DEFAULT_PROJECT).await?,
    };
    let owner = Owner {
        kind: "user".to_owned(),
        id: user.id.to_string(),
    };
    let inference = api_key::generate(KeyKind::Project);
    store
        .create_api_key(NewApiKey {
            tenant_id: &tenant.id,
            project_id: Some(&project.id),
            kind: KeyKind::Project,
            name: "bootstrap",
            hash: &inference.hash,
            prefix: &inference.prefix,
            scopes: &[Scope::Inference],
            owner: &owner,
            limits: KeyLimits::default(),
            expires_ms: None,
        })
        .await?;
    let admin = api_key::generate(KeyKind::Admin);
    store
        .create_api_key(NewApiKey {
            tenant_id: &tenant.id,
            project_id: None,
            kind: KeyKind::Admin,
            name: "bootstrap",
            hash: &admin.hash,
            prefix: &admin.prefix,
            scopes: &[Scope::Admin],
            owner: &owner,
            limits: KeyLimits::default(),
            expires_ms: None,
        })
        .await?;
    store
        .record_audit(AuditEvent {
            tenant_id: &tenant.id,
            action: "organization.bootstrapped",
            actor_type: "user",
            actor_id: &user.id,
            target_type: "organization",
            target_id: &tenant.id,
            ip: None,
            request_id: None,
        })
        .await?;
    Ok(Bootstrapped {
        tenant_id: tenant.id.into_string(),
        project_id: project.id.into_string(),
        api_key: inference.value,
        admin_key: admin.value,
    })
}
