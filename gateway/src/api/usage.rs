//! OpenAI's usage and costs API: `/v1/organization/usage/completions`,
//! `/v1/organization/usage/embeddings` and `/v1/organization/costs`.
//!
//! Buckets of 1m, 1h or 1d from `start_time` (rounded down to the minute), summed from the
//! per-minute rollup that each usage event's finalization updates: a query never scans raw
//! events. Pages hold `limit` buckets; `next_page` is the start of the next one. Every query
//! is filtered by the caller's tenant, and a project API key (scope `usage:read`) sees only its
//! project.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::now_ms;
use crate::store::usage::{Endpoint, UsageQuery, UsageTotals};

/// Most ids in one filter.
const MAX_FILTER_VALUES: usize = 100;
/// Longest id or model name accepted in a filter.
const MAX_VALUE_LEN: usize = 256;

/// The query of the usage endpoints (arrays as `name[]=a&name[]=b` or `name=a&name=b`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the query; it is parsed by hand (repeated keys).
pub struct UsageParams {
    /// Start (inclusive), Unix seconds; rounded down to the minute.
    #[param(minimum = 0)]
    start_time: i64,
    /// End (exclusive), Unix seconds; default now.
    end_time: Option<i64>,
    /// `1m`, `1h` or `1d` (default).
    #[param(pattern = "^(1m|1h|1d)$")]
    bucket_width: Option<String>,
    /// Only these projects.
    project_ids: Option<Vec<String>>,
    /// Only these API keys.
    api_key_ids: Option<Vec<String>>,
    /// Only these models.
    models: Option<Vec<String>>,
    /// Group each bucket's results by `project_id`, `api_key_id` and/or `model`.
    group_by: Option<Vec<String>>,
    /// Buckets per page: 1d up to 31 (default 7), 1h up to 168 (default 24), 1m up to 1440
    /// (default 60).
    #[param(minimum = 1, maximum = 1440)]
    limit: Option<i64>,
    /// `next_page` of the previous answer.
    page: Option<String>,
}

/// The query of the costs endpoint.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CostsParams {
    /// Start (inclusive), Unix seconds; rounded down to the minute.
    #[param(minimum = 0)]
    start_time: i64,
    /// End (exclusive), Unix seconds; default now.
    end_time: Option<i64>,
    /// Only `1d` (default).
    #[param(pattern = "^1d$")]
    bucket_width: Option<String>,
    /// Only these projects.
    project_ids: Option<Vec<String>>,
    /// Group by `project_id` and/or `line_item` (the model).
    group_by: Option<Vec<String>>,
    /// Buckets per page, 1 to 180 (default 7).
    #[param(minimum = 1, maximum = 180)]
    limit: Option<i64>,
    /// `next_page` of the previous answer.
    page: Option<String>,
}

/// One result of a completions usage bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionsUsageResult {
    /// Always `organization.usage.completions.result`.
    pub object: &'static str,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub input_cached_tokens: i64,
    pub input_audio_tokens: i64,
    pub output_audio_tokens: i64,
    pub num_model_requests: i64,
    /// Set when grouped by `project_id`.
    pub project_id: Option<String>,
    /// Always null (usage is not attributed to users).
    pub user_id: Option<String>,
    /// Set when grouped by `api_key_id`.
    pub api_key_id: Option<String>,
    /// Set when grouped by `model`.
    pub model: Option<String>,
    /// Always null (no batch API).
    pub batch: Option<bool>,
}

/// One result of an embeddings usage bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsUsageResult {
    /// Always `organization.usage.embeddings.result`.
    pub object: &'static str,
    pub input_tokens: i64,
    pub num_model_requests: i64,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
}

/// An amount of money.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostAmount {
    /// In `currency` units (computed from integer micro-units; display only).
    pub value: f64,
    /// Always `usd`.
    pub currency: &'static str,
}

/// One result of a costs bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostResult {
    /// Always `organization.costs.result`.
    pub object: &'static str,
    pub amount: CostAmount,
    /// The model, when grouped by `line_item`.
    pub line_item: Option<String>,
    pub project_id: Option<String>,
}

/// A time bucket and its results.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBucket<T> {
    /// Always `bucket`.
    pub object: &'static str,
    /// Unix seconds.
    pub start_time: i64,
    /// Unix seconds (exclusive).
    pub end_time: i64,
    pub results: Vec<T>,
}

/// A page of buckets.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePage<T> {
    /// Always `page`.
    pub object: &'static str,
    pub data: Vec<UsageBucket<T>>,
    pub has_more: bool,
    /// Pass as `page` for the next buckets.
    pub next_page: Option<String>,
}

/// The parsed query.
#[derive(Debug, Default)]
struct Parsed {
    start_time: Option<i64>,
    end_time: Option<i64>,
    bucket_width: Option<String>,
    project_ids: Vec<String>,
    api_key_ids: Vec<String>,
    models: Vec<String>,
    group_by: Vec<String>,
    limit: Option<i64>,
    page: Option<String>,
}

fn parse_query(query: &str, allowed: &[&str]) -> Result<Parsed, ApiError> {
    let mut p = Parsed::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let key = key.strip_suffix("[]").unwrap_or(&key).to_owned();
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::field(&key, "unknown query parameter"));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(ApiError::field(
                &key,
                format_args!("longer than {MAX_VALUE_LEN} characters"),
            ));
        }
        let value = value.into_owned();
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| ApiError::field(&key, format_args!("'{v}' is not an integer")))
        };
        let list = match key.as_str() {
            "start_time" => {
                p.start_time = Some(number(&value)?);
                continue;
            }
            "end_time" => {
                p.end_time = Some(number(&value)?);
                continue;
            }
            "limit" => {
                p.limit = Some(number(&value)?);
                continue;
            }
            "bucket_width" => {
                p.bucket_width = Some(value);
                continue;
            }
            "page" => {
                p.page = Some(value);
                continue;
            }
            "project_ids" => &mut p.project_ids,
            "api_key_ids" => &mut p.api_key_ids,
            "models" => &mut p.models,
            "group_by" => &mut p.group_by,
            _ => return Err(ApiError::field(&key, "unknown query parameter")),
        };
        // `a,b` is accepted as well as repeated keys.
        for v in value.split(',').filter(|v| !v.is_empty()) {
            list.push(v.to_owned());
        }
        if list.len() > MAX_FILTER_VALUES {
            return Err(ApiError::field(
                &key,
                format_args!("at most {MAX_FILTER_VALUES} values"),
            ));
        }
    }
    Ok(p)
}

/// The bucket layout of a query: aligned start, width, and the page's range.
struct Window {
    start_ms: i64,
    width_ms: i64,
    end_ms: i64,
    /// First bucket index of this page.
    first: i64,
    /// Buckets on this page.
    count: i64,
    has_more: bool,
}

fn window(p: &Parsed, widths: &[&str]) -> Result<Window, ApiError> {
    let start = p
        .start_time
        .ok_or_else(|| ApiError::field("start_time", "required (Unix seconds)"))?;
    if start < 0 {
        return Err(ApiError::field("start_time", "must not be negative"));
    }
    let start_ms = start.saturating_mul(1000).div_euclid(60_000) * 60_000;
    let end_ms = match p.end_time {
        Some(end) if end <= start => {
            return Err(ApiError::field("end_time", "must be after start_time"));
        }
        Some(end) => end.saturating_mul(1000),
        None => now_ms(),
    };
    let width = p.bucket_width.as_deref().unwrap_or("1d");
    if !widths.contains(&width) {
        return Err(ApiError::field(
            "bucket_width",
            format_args!("'{width}' is not one of {}", widths.join(", ")),
        ));
    }
    let (width_ms, default_limit, max_limit) = match width {
        "1m" => (60_000, 60, 1440),
        "1h" => (3_600_000, 24, 168),
        _ if widths.len() == 1 => (86_400_000, 7, 180),
        _ => (86_400_000, 7, 31),
    };
    let limit = p.limit.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format_args!("must be between 1 and {max_limit}"),
        ));
    }
    let total = (end_ms - start_ms + width_ms - 1)
        .div_euclid(width_ms)
        .max(1);
    let first = match &p.page {
        None => 0,
        Some(token) => token
            .strip_prefix("page_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|b| (0..total).contains(b))
            .ok_or_else(|| ApiError::field("page", "not a page token of this query"))?,
    };
    let count = limit.min(total - first);
    Ok(Window {
        start_ms,
        width_ms,
        end_ms,
        first,
        count,
        has_more: first + count < total,
    })
}

/// The caller's project filter: a project key only ever sees its own project. `None` when
/// the caller asked only for projects it cannot see (an empty answer).
fn project_filter(principal: &Principal, requested: Vec<String>) -> Option<Vec<String>> {
    match &principal.project_id {
        Some(own) if requested.is_empty() || requested.iter().any(|p| own == p) => {
            Some(vec![own.to_string()])
        }
        Some(_) => None,
        None => Some(requested),
    }
}

fn group_flags(group_by: &[String], allowed: &[&str]) -> Result<(bool, bool, bool), ApiError> {
    for g in group_by {
        if !allowed.contains(&g.as_str()) {
            return Err(ApiError::field(
                "group_by",
                format_args!("'{g}' is not one of {}", allowed.join(", ")),
            ));
        }
    }
    let has = |name: &str| group_by.iter().any(|g| g == name);
    Ok((
        has("project_id"),
        has("api_key_id"),
        has("model") || has("line_item"),
    ))
}

/// Runs the query for one page and lays the totals into buckets.
async fn page_of<T>(
    state: &AppState,
    principal: &Principal,
    endpoint: Option<Endpoint>,
    p: Parsed,
    widths: &[&str],
    groups: &[&str],
    result: impl Fn(UsageTotals) -> T,
) -> Result<UsagePage<T>, ApiError> {
    principal.require(Permission::ReadUsage)?;
    let w = window(&p, widths)?;
    let (by_project, by_key, by_model) = group_flags(&p.group_by, groups)?;
    let page_start = w.start_ms + w.first * w.width_ms;
    let page_end = (page_start + w.count * w.width_ms).min(w.end_ms);
    let totals = match project_filter(principal, p.project_ids) {
        Some(project_ids) => {
            state
                .store
                .usage_totals(&UsageQuery {
                    tenant_id: principal.tenant_id.clone(),
                    endpoint,
                    start_ms: w.start_ms,
                    from_ms: page_start,
                    end_ms: page_end,
                    width_ms: w.width_ms,
                    project_ids,
                    api_key_ids: p.api_key_ids,
                    models: p.models,
                    group_by_project: by_project,
                    group_by_key: by_key,
                    group_by_model: by_model,
                })
                .await?
        }
        None => Vec::new(),
    };
    let mut data: Vec<UsageBucket<T>> = (w.first..w.first + w.count)
        .map(|b| UsageBucket {
            object: "bucket",
            start_time: (w.start_ms + b * w.width_ms) / 1000,
            end_time: (w.start_ms + (b + 1) * w.width_ms) / 1000,
            results: Vec::new(),
        })
        .collect();
    for t in totals {
        let i = t.bucket - w.first;
        if let Some(bucket) = usize::try_from(i).ok().and_then(|i| data.get_mut(i)) {
            bucket.results.push(result(t));
        }
    }
    Ok(UsagePage {
        object: "page",
        data,
        has_more: w.has_more,
        next_page: w.has_more.then(|| format!("page_{}", w.first + w.count)),
    })
}

const USAGE_KEYS: &[&str] = &[
    "start_time",
    "end_time",
    "bucket_width",
    "project_ids",
    "api_key_ids",
    "models",
    "group_by",
    "limit",
    "page",
];

/// Token usage of chat and text completions, in time buckets.
#[utoipa::path(get, path = "/v1/organization/usage/completions", tag = "Usage",
    params(UsageParams),
    responses((status = 200, body = UsagePage<CompletionsUsageResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage_completions(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = parse_query(req.query_string(), USAGE_KEYS)?;
    let page = page_of(
        &state,
        &principal,
        Some(Endpoint::Completions),
        p,
        &["1m", "1h", "1d"],
        &["project_id", "api_key_id", "model"],
        |t| CompletionsUsageResult {
            object: "organization.usage.completions.result",
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            input_cached_tokens: t.cached_tokens,
            input_audio_tokens: 0,
            output_audio_tokens: 0,
            num_model_requests: t.requests,
            project_id: t.project_id,
            user_id: None,
            api_key_id: t.api_key_id,
            model: t.model,
            batch: None,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Token usage of embeddings, in time buckets.
#[utoipa::path(get, path = "/v1/organization/usage/embeddings", tag = "Usage",
    params(UsageParams),
    responses((status = 200, body = UsagePage<EmbeddingsUsageResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage_embeddings(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = parse_query(req.query_string(), USAGE_KEYS)?;
    let page = page_of(
        &state,
        &principal,
        Some(Endpoint::Embeddings),
        p,
        &["1m", "1h", "1d"],
        &["project_id", "api_key_id", "model"],
        |t| EmbeddingsUsageResult {
            object: "organization.usage.embeddings.result",
            input_tokens: t.input_tokens,
            num_model_requests: t.requests,
            project_id: t.project_id,
            user_id: None,
            api_key_id: t.api_key_id,
            model: t.model,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// What the organization spent, per day (all endpoints; `line_item` is the model).
#[utoipa::path(get, path = "/v1/organization/costs", tag = "Usage",
    params(CostsParams),
    responses((status = 200, body = UsagePage<CostResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn costs(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = parse_query(
        req.query_string(),
        &[
            "start_time",
            "end_time",
            "bucket_width",
            "project_ids",
            "group_by",
            "limit",
            "page",
        ],
    )?;
    let page = page_of(
        &state,
        &principal,
        None,
        p,
        &["1d"],
        &["project_id", "line_item"],
        |t| CostResult {
            object: "organization.costs.result",
            amount: CostAmount {
                value: t.cost.as_dollars(),
                currency: "usd",
            },
            line_item: t.model,
            project_id: t.project_id,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_minute_and_page_by_bucket() {
        let p = Parsed {
            start_time: Some(90),
            end_time: Some(90 + 3 * 3600),
            bucket_width: Some("1h".into()),
            limit: Some(2),
            ..Parsed::default()
        };
        let w = window(&p, &["1m", "1h", "1d"]).unwrap();
        assert_eq!(w.start_ms, 60_000);
        assert_eq!((w.first, w.count, w.has_more), (0, 2, true));
        let p = Parsed {
            page: Some("page_2".into()),
            ..p
        };
        let w = window(&p, &["1m", "1h", "1d"]).unwrap();
        assert_eq!((w.first, w.count, w.has_more), (2, 2, false));
        let bad = Parsed {
            page: Some("page_9".into()),
            ..p
        };
        assert!(window(&bad, &["1h"]).is_err());
    }

    #[test]
    fn queries_take_repeated_and_bracketed_arrays_and_refuse_unknown_keys() {
        let p = parse_query(
            "start_time=5&models[]=a&models=b,c&group_by=model",
            USAGE_KEYS,
        )
        .unwrap();
        assert_eq!(p.models, ["a", "b", "c"]);
        assert_eq!(p.group_by, ["model"]);
        let err = parse_query("start_time=5&user_ids=x", USAGE_KEYS).unwrap_err();
        assert_eq!(err.body().error.param.as_deref(), Some("user_ids"));
    }
}
