//! TLS termination for `serve` and `worker` (rustls over ring, TLS 1.2 and 1.3, HTTP/1.1 and
//! HTTP/2 by ALPN), from a PEM certificate chain and private key (`tls_cert`, `tls_key`).
//!
//! The pair is re-read on SIGHUP (a renewed certificate, as certbot or cert-manager write it):
//! handshakes after the reload present the new pair, connections already open keep theirs, and
//! a pair that fails to load (unreadable, not PEM, a key that does not match the certificate)
//! is logged and the current one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read the TLS private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the TLS private key {key} does not match the certificate {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Reads the certificate chain at `cert` and the private key at `key` (PKCS#8, PKCS#1 or SEC1
/// PEM) and checks that they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certificate_error = |message: String| TlsError::Certificate {
        path: cert.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no CERTIFICATE block in the file".into()));
    }
    let key_error = |message: String| TlsError::Key {
        path: key.to_owned(),
        message,
    };
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(e.to_string()))?;
    let signing = any_supported_type(&private).map_err(|e| key_error(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    Ok(pair)
}

/// The server's certificate, swapped by [`Reloading::reload`].
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloading {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Reloading>, TlsError> {
        let pair = load_pair(cert, key)?;
        Ok(Arc::new(Reloading {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again; on success new handshakes present the new pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// A rustls server configuration presenting this certificate (actix adds the ALPN
    /// protocols, `h2` and `http/1.1`).
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone()))
    }

    /// Reloads the pair on every SIGHUP until the process ends (on Unix; elsewhere never).
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let this = self.clone();
            match signal(SignalKind::hangup()) {
                Ok(mut hangups) => {
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            match this.reload() {
                                Ok(()) => tracing::info!(
                                    cert = %this.cert.display(),
                                    "SIGHUP: TLS certificate reloaded"
                                ),
                                Err(e) => tracing::error!(
                                    error = %e,
                                    "SIGHUP: TLS certificate not reloaded; keeping the current one"
                                ),
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS reload is off"),
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_mismatched_pairs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_pair(&missing, &missing).unwrap_err().to_string();
        assert!(
            err.contains("certificate") && err.contains("missing.pem"),
            "{err}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err = load_pair(&garbage, &garbage).unwrap_err().to_string();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
