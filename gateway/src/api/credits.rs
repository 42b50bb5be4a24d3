//! `/v1/organization/credits`: the organization's prepaid balance and its ledger.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::ms_to_secs;

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditEntryObject {
    pub id: String,
    /// `grant`, `top_up`, `usage` (negative) or `adjustment`.
    pub kind: String,
    /// Micro-units of USD (1 USD = 1,000,000); negative for debits.
    pub amount_micros: i64,
    /// The request a usage debit is for.
    pub request_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The prepaid account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsObject {
    /// Always `organization.credits`.
    pub object: &'static str,
    /// `prepaid`, or `postpaid` (no prepaid account: usage is invoiced; amounts are 0).
    pub mode: &'static str,
    /// The ledger's sum, micro-USD.
    pub balance_micros: i64,
    /// Held by requests in flight, micro-USD.
    pub reserved_micros: i64,
    /// What new requests can still reserve, micro-USD.
    pub available_micros: i64,
    /// The ledger, oldest first.
    pub ledger: Vec<CreditEntryObject>,
}

/// The organization's prepaid credits and ledger.
#[utoipa::path(get, path = "/v1/organization/credits", tag = "Usage",
    responses((status = 200, body = CreditsObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_credits(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadUsage)?;
    let account = state.store.credit_balance(&principal.tenant_id).await?;
    let ledger = match account {
        Some(_) => state.store.credit_ledger(&principal.tenant_id).await?,
        None => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(CreditsObject {
        object: "organization.credits",
        mode: if account.is_some() {
            "prepaid"
        } else {
            "postpaid"
        },
        balance_micros: account.map_or(0, |a| a.balance.micros()),
        reserved_micros: account.map_or(0, |a| a.reserved.micros()),
        available_micros: account.map_or(0, |a| a.available().micros()),
        ledger: ledger
            .into_iter()
            .map(|e| CreditEntryObject {
                id: e.id,
                kind: e.kind,
                amount_micros: e.amount.micros(),
                request_id: e.request_id,
                created_at: ms_to_secs(e.created_ms),
            })
            .collect(),
    }))
}
