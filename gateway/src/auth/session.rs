//! Console session tokens: a short-lived access token (HS256 JWT) and an opaque refresh token
//! (`sfr-` + 48 base62 characters, stored as its SHA-256).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::secret::{random_base62, sha256_hex};

const ISSUER: &str = "starfire";
pub const REFRESH_PREFIX: &str = "sfr-";

/// The claims of an access token. The role is deliberately absent: it is read from the database
/// on every request, so a demotion takes effect at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Tenant the session acts in.
    pub tid: String,
    /// Session family id (revoking it ends the session).
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
}

/// Signs and checks access tokens; mints refresh tokens.
pub struct SessionTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
}

/// A refresh token for the client and its hash for the database.
pub struct NewRefreshToken {
    pub value: String,
    pub hash: String,
}

impl SessionTokens {
    pub fn new(secret: &str, access_ttl_secs: u64, refresh_ttl_secs: u64) -> Self {
        SessionTokens {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            access_ttl_secs,
            refresh_ttl_secs,
        }
    }

    pub fn issue_access(
        &self,
        user_id: &str,
        tenant_id: &str,
        family_id: &str,
        now_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.issue_access_for(
            user_id,
            tenant_id,
            family_id,
            now_secs,
            self.access_ttl_secs,
        )
    }

    /// An access token valid for `ttl_secs` (the console's cookie lives longer than API access
    /// tokens; it is still checked against the session family on every request).
    pub fn issue_access_for(
        &self,
        user_id: &str,
        tenant_id: &str,
        family_id: &str,
        now_secs: u64,
        ttl_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user_id.to_owned(),
            tid: tenant_id.to_owned(),
            sid: family_id.to_owned(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            iss: ISSUER.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks signature, algorithm, issuer and expiry.
    pub fn verify_access(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    pub fn new_refresh() -> NewRefreshToken {
        let value = format!("{REFRESH_PREFIX}{}", random_base62(48));
        NewRefreshToken {
            hash: sha256_hex(&value),
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let tokens = SessionTokens::new(&"s".repeat(40), 60, 600);
        let jwt = tokens
            .issue_access("user_1", "org_1", "sess_1", now())
            .unwrap();
        let claims = tokens.verify_access(&jwt).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.tid.as_str()),
            ("user_1", "org_1")
        );

        let other = SessionTokens::new(&"t".repeat(40), 60, 600);
        assert!(
            other.verify_access(&jwt).is_none(),
            "another secret must not verify"
        );

        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged_sig = "AAAA".repeat(10);
        parts[2] = &forged_sig;
        assert!(tokens.verify_access(&parts.join(".")).is_none());
    }

    #[test]
    fn expired_access_tokens_are_rejected() {
        let tokens = SessionTokens::new(&"s".repeat(40), 60, 600);
        let jwt = tokens.issue_access("u", "o", "s", now() - 3600).unwrap();
        assert!(tokens.verify_access(&jwt).is_none());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = SessionTokens::new_refresh();
        let b = SessionTokens::new_refresh();
        assert!(a.value.starts_with(REFRESH_PREFIX));
        assert_ne!(a.value, b.value);
        assert_eq!(a.hash, sha256_hex(&a.value));
    }
}
