//! Validation of request values, parsed once at the edge. Every error is a 422 naming the field.

use crate::error::ApiError;
use crate::store::now_ms;

/// A trimmed, lower-cased email address of plausible shape.
pub fn email(field: &str, raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid(
            field,
            format!("'{field}' must be an email address like name@example.com."),
        ))
    }
}

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;

pub fn password(field: &str, raw: &str) -> Result<(), ApiError> {
    let n = raw.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("'{field}' must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters."),
        ))
    }
}

pub const MAX_NAME: usize = 128;

/// A display name: trimmed, 1..=128 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    text(field, raw, MAX_NAME)
}

/// The pattern of [`text`] as the OpenAPI document states it (with `minLength` 1 and the
/// `maxLength`): no control characters, at least one that is not white space.
pub const TEXT_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

/// Short free text (a name, a reason): trimmed, not empty, at most `max` characters (counted
/// before trimming, as JSON Schema's `maxLength` counts), no control characters.
pub fn text(field: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("'{field}' must not be empty."),
        ));
    }
    if raw.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("'{field}' must be at most {max} characters."),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("'{field}' must not contain control characters."),
        ));
    }
    Ok(name.to_owned())
}

/// A Unix time in seconds that lies in the future; returned in milliseconds.
pub fn future_time(field: &str, secs: i64) -> Result<i64, ApiError> {
    let ms = secs.checked_mul(1000).filter(|ms| *ms > now_ms());
    ms.ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("'{field}' must be a Unix time (seconds) in the future."),
        )
    })
}

/// Rate-limit overrides: every given value a positive integer.
pub fn limits(
    field: &str,
    limits: crate::store::api_keys::KeyLimits,
) -> Result<crate::store::api_keys::KeyLimits, ApiError> {
    Ok(crate::store::api_keys::KeyLimits {
        rpm: positive(&format!("{field}.rpm"), limits.rpm)?,
        tpm: positive(&format!("{field}.tpm"), limits.tpm)?,
        concurrency: positive(&format!("{field}.concurrency"), limits.concurrency)?,
    })
}

pub fn positive(field: &str, value: Option<i64>) -> Result<Option<i64>, ApiError> {
    match value {
        Some(v) if v <= 0 => Err(ApiError::invalid(
            field,
            format!("'{field}' must be a positive integer."),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(err: ApiError) -> String {
        match err {
            ApiError::InvalidValue { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn emails_are_normalized_or_rejected_by_name() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "", "ada", "ada@", "@x.io", "a@b", "a b@c.io", "a@b@c.io", "a@.io",
        ] {
            assert_eq!(param(email("email", bad).unwrap_err()), "email", "{bad}");
        }
    }

    #[test]
    fn names_passwords_and_times_are_bounded() {
        assert_eq!(name("name", "  Web app ").unwrap(), "Web app");
        assert_eq!(param(name("name", "   ").unwrap_err()), "name");
        assert_eq!(param(name("name", &"x".repeat(129)).unwrap_err()), "name");
        assert_eq!(param(name("name", "a\u{7}b").unwrap_err()), "name");
        assert!(password("password", "12345678").is_ok());
        assert_eq!(
            param(password("password", "short").unwrap_err()),
            "password"
        );
        assert_eq!(
            param(future_time("expires_at", 1).unwrap_err()),
            "expires_at"
        );
        assert!(future_time("expires_at", now_ms() / 1000 + 60).is_ok());
        assert_eq!(
            param(positive("limits.rpm", Some(0)).unwrap_err()),
            "limits.rpm"
        );
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    /// The documented pattern and `text` agree: what one admits the other accepts.
    #[test]
    fn text_pattern_matches_what_text_accepts() {
        let pattern = regex::Regex::new(TEXT_PATTERN).unwrap();
        for raw in [
            "a",
            " a ",
            "Ünïcødé name",
            "\u{85}a",
            "a\n",
            "\ta",
            "",
            "   ",
            "\u{2028}",
            "a\u{9f}",
            "a\u{7f}",
            "name with  spaces",
            "\u{a0}x\u{a0}",
        ] {
            assert_eq!(
                pattern.is_match(raw),
                text("f", raw, MAX_NAME).is_ok(),
                "{raw:?}"
            );
        }
    }
}
