//! `/v1/models` and `/v1/models/{model}`: the served models.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;

/// A served model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    /// The name to pass as `model`.
    #[schema(example = "smollm2-135m-instruct")]
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds when the model was loaded.
    pub created: u64,
    /// `starfire` for shared models; the organization's id for its own deployments.
    pub owned_by: String,
}

/// The served models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// List the served models.
#[utoipa::path(get, path = "/v1/models", tag = "Inference",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, description = "No model is loaded (`model_not_loaded`): run `starfire model fetch`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_models(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let mut data: Vec<ModelObject> = state
        .inference
        .models()?
        .into_iter()
        .map(|m| ModelObject {
            id: m.id,
            object: "model",
            created: m.created,
            owned_by: "starfire".to_owned(),
        })
        .collect();
    // The organization's own deployments that serve now, owned by it.
    let owner = principal.tenant_id.to_string();
    for (name, created) in state.deployments.serving(&principal.tenant_id) {
        data.push(ModelObject {
            id: name,
            object: "model",
            created,
            owned_by: owner.clone(),
        });
    }
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    }))
}

/// Retrieve a served model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "Inference",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, body = ModelObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retrieve_model(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let name = path.into_inner();
    let served = state.model_for(&principal, &name)?;
    if let Some((id, created)) = state
        .deployments
        .serving(&principal.tenant_id)
        .into_iter()
        .find(|(id, _)| id == served.name())
    {
        return Ok(HttpResponse::Ok().json(ModelObject {
            id,
            object: "model",
            created,
            owned_by: principal.tenant_id.to_string(),
        }));
    }
    let card = state
        .inference
        .models()?
        .into_iter()
        .find(|m| m.id == served.name())
        .ok_or_else(|| ApiError::ModelNotFound(format!("The model '{name}' does not exist.")))?;
    Ok(HttpResponse::Ok().json(ModelObject {
        id: card.id,
        object: "model",
        created: card.created,
        owned_by: "starfire".to_owned(),
    }))
}
