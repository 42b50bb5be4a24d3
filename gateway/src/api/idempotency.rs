//! `Idempotency-Key` on the POSTs that create things (projects, API keys, admin keys, invites).
//!
//! The first request with a key reserves it (per tenant and principal) and runs; a successful
//! answer is stored, and a retry with the same key and the same request gets that answer back
//! (with `Idempotent-Replayed: true`) instead of creating a second object. The same key with a
//! different method, path or body is refused with 422; while the first request still runs a
//! retry gets 409. Failed requests release the key, so a retry runs again.
//! Keys expire after 24 hours. The stored answer can hold a secret (a new key's value): it is
//! sealed under a key derived from the server secret and the idempotency key, and only the
//! SHA-256 of the idempotency key is stored.

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::auth::secret::sha256_hex;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::idempotency::Reservation;

pub const HEADER: &str = "idempotency-key";
/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_KEY_LEN: usize = 255;

/// The key of a request, when it sent one; 400 when it is not 1 to 255 printable ASCII characters.
pub fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "'Idempotency-Key' must be 1 to 255 printable ASCII characters without spaces.",
                Some("Idempotency-Key"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

fn sealing_key(secret: &str, principal: &str, key: &str) -> LessSafeKey {
    let mac = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&mac, format!("idempotency\0{principal}\0{key}").as_bytes());
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, tag.as_ref()).expect("32-byte key");
    LessSafeKey::new(unbound)
}

fn seal(key: &LessSafeKey, plain: &[u8]) -> Result<String, ApiError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| ApiError::Internal("no randomness for a nonce".into()))?;
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .map_err(|_| ApiError::Internal("could not seal a stored response".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

fn open(key: &LessSafeKey, stored: &str) -> Result<Vec<u8>, ApiError> {
    let broken = || ApiError::Internal("a stored idempotent response cannot be opened".into());
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .map_err(|_| broken())?;
    if bytes.len() < NONCE_LEN {
        return Err(broken());
    }
    let mut sealed = bytes.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| broken())?;
    let plain = key
        .open_in_place(nonce, Aad::empty(), &mut sealed)
        .map_err(|_| broken())?;
    Ok(plain.to_vec())
}

fn mismatch() -> ApiError {
    ApiError::invalid(
        "Idempotency-Key",
        "This Idempotency-Key was already used with a different request (method, path or body); \
         use a new key for a new request.",
    )
}

/// Runs `handler` at most once per idempotency key: see the module documentation.
/// `body_digest` is the SHA-256 of the raw request body.
pub async fn once<F>(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    body_digest: &[u8],
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(key) = key_of(req)? else {
        return handler.await;
    };
    let (actor_type, actor_id) = principal.actor();
    let who = format!("{actor_type}:{actor_id}");
    let key_hash = sha256_hex(&key);
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update([0]);
    hasher.update(req.path().as_bytes());
    hasher.update([0]);
    hasher.update(body_digest);
    let request_hash = crate::auth::secret::hex(&hasher.finalize());
    let tenant = &principal.tenant_id;
    let sealing = sealing_key(&state.config.session_secret, &who, &key);

    match state
        .store
        .reserve_idempotency_key(tenant, &who, &key_hash, &request_hash, TTL_MS)
        .await?
    {
        Reservation::Reserved => {}
        Reservation::InProgress { request_hash: seen } => {
            if seen != request_hash {
                return Err(mismatch());
            }
            return Err(ApiError::Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly."
                    .into(),
            ));
        }
        Reservation::Done {
            request_hash: seen,
            status,
            response,
        } => {
            if seen != request_hash {
                return Err(mismatch());
            }
            let body = open(&sealing, &response)?;
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            return Ok(HttpResponse::build(status)
                .content_type("application/json")
                .insert_header(("Idempotent-Replayed", "true"))
                .body(body));
        }
    }

    let release = |state: &AppState| {
        let store = state.store.clone();
        let (tenant, who, key_hash) = (tenant.clone(), who.clone(), key_hash.clone());
        async move {
            if let Err(e) = store
                .release_idempotency_key(&tenant, &who, &key_hash)
                .await
            {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
        }
    };
    let response = match handler.await {
        Ok(response) if response.status().is_success() => response,
        other => {
            release(state).await;
            return other;
        }
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.into_body().try_into_bytes() {
        Ok(bytes) => bytes,
        Err(_) => {
            release(state).await;
            return Err(ApiError::Internal(
                "an idempotent handler answered with a streamed body".into(),
            ));
        }
    };
    let stored = seal(&sealing, &body)?;
    if let Err(e) = state
        .store
        .complete_idempotency_key(tenant, &who, &key_hash, i64::from(status.as_u16()), &stored)
        .await
    {
        // The object exists; answer with it, and let a retry run again rather than wait.
        tracing::warn!(error = %e, "could not store an idempotent response");
        release(state).await;
    }
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        builder.insert_header((name.clone(), value.clone()));
    }
    Ok(builder.body(body))
}
