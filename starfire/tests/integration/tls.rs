//! TLS termination by the real binaries: `starfire serve` with a self-signed certificate speaks
//! HTTPS over HTTP/1.1 and HTTP/2 (ALPN) and never plain HTTP; SIGHUP swaps in a renewed
//! certificate for new handshakes while open connections keep working; a broken renewal is
//! refused and the current certificate kept; bad settings stop the start with the reason; and
//! `starfire worker` terminates TLS the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::e2e::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_starfire");

struct Pair {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1 with its own new key.
fn self_signed() -> Pair {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    Pair {
        cert_pem: made.cert.pem(),
        key_pem: made.key_pair.serialize_pem(),
        der: made.cert.der().clone(),
    }
}

fn install(pair: &Pair, dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    (cert, key)
}

struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `starfire args` with a clean `STARFIRE_*` environment plus `env`, its output in a log file.
fn start(args: &[&str], env: &[(&str, &Path)], home: &Path) -> Process {
    let log = home.join(format!("{}.log", args[0]));
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = std::fs::File::create(&log).unwrap();
    let child = cmd
        .args(args)
        .env("STARFIRE_HOME", home)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Process { child, log }
}

fn wait_for_port(port: u16, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("exited early ({status}): {}", process.log());
        }
        assert!(
            Instant::now() < deadline,
            "not listening: {}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client trusting `roots`, offering `alpn`.
fn connector(roots: &[&CertificateDer<'static>], alpn: &[u8]) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `port`; the certificate the server presented and the protocol agreed.
async fn handshake(port: u16, connector: &TlsConnector) -> (Tls, CertificateDer<'static>, Vec<u8>) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (_, session) = tls.get_ref();
    let presented = session.peer_certificates().unwrap()[0].clone();
    let alpn = session.alpn_protocol().unwrap_or_default().to_vec();
    (tls, presented, alpn)
}

fn request(method: &str, path: &str, body: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn http1(tls: Tls) -> H1 {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn http2(tls: Tls) -> H2 {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn status_of(
    response: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> (u16, hyper::Version, String) {
    let response = response.expect("a response");
    let (status, version) = (response.status().as_u16(), response.version());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, version, String::from_utf8_lossy(&body).into_owned())
}

/// Polls new handshakes until the server presents `expected` (after a SIGHUP).
async fn presented_eventually(port: u16, connector: &TlsConnector, expected: &CertificateDer<'_>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, presented, _) = handshake(port, connector).await;
        if presented == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn serve_terminates_tls_over_http1_and_http2_and_reloads_on_sighup() {
    let home = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (a, b) = (self_signed(), self_signed());
    let (cert, key) = install(&a, certs.path());
    let port = free_port();
    let listen = PathBuf::from(format!("127.0.0.1:{port}"));
    let no_model = home.path().join("no-model.gguf");
    let mut server = start(
        &["serve"],
        &[
            ("STARFIRE_LISTEN", &listen),
            ("STARFIRE_TLS_CERT", &cert),
            ("STARFIRE_TLS_KEY", &key),
            ("STARFIRE_MODEL_PATH", &no_model),
        ],
        home.path(),
    );
    wait_for_port(port, &mut server);
    let both = connector(&[&a.der, &b.der], b"http/1.1");
    let h2 = connector(&[&a.der, &b.der], b"h2");

    // HTTP/1.1 over TLS; this connection stays open across the reload below.
    let (tls, presented, alpn) = handshake(port, &both).await;
    assert_eq!(
        (presented == a.der, alpn.as_slice()),
        (true, &b"http/1.1"[..])
    );
    let mut kept = http1(tls).await;
    let (status, version, _) =
        status_of(kept.send_request(request("GET", "/healthz", "")).await).await;
    assert_eq!((status, version), (200, hyper::Version::HTTP_11));

    // HTTP/2 by ALPN: a read and a JSON API call with a body.
    let (tls, _, alpn) = handshake(port, &h2).await;
    assert_eq!(alpn, b"h2");
    let mut sender = http2(tls).await;
    let (status, version, _) =
        status_of(sender.send_request(request("GET", "/healthz", "")).await).await;
    assert_eq!((status, version), (200, hyper::Version::HTTP_2));
    let signup = r#"{"email":"tls@example.com","password":"password123"}"#;
    let (status, _, body) = status_of(
        sender
            .send_request(request("POST", "/v1/auth/signup", signup))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("access_token"), "{body}");

    // No plain HTTP on the TLS port.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered");

    // A renewed certificate: SIGHUP, and new handshakes present it.
    install(&b, certs.path());
    server.signal("HUP");
    presented_eventually(port, &both, &b.der).await;
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );
    // The connection opened before the reload still works.
    let (status, _, _) = status_of(kept.send_request(request("GET", "/healthz", "")).await).await;
    assert_eq!(status, 200);

    // A broken renewal (the new certificate with the old key) is refused; B stays.
    std::fs::write(&key, &a.key_pem).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("does not match"), "{}", server.log());
    let (_, presented, _) = handshake(port, &both).await;
    assert!(presented == b.der, "the current certificate was kept");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
}

#[test]
fn bad_tls_settings_stop_the_start_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let (cert, key) = install(&pair, home.path());
    let other = self_signed();
    let other_key = home.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let missing = home.path().join("missing.pem");
    let listen = PathBuf::from(format!("127.0.0.1:{}", free_port()));
    for (env, expected) in [
        (vec![("STARFIRE_TLS_CERT", &cert)], "tls_key"),
        (vec![("STARFIRE_TLS_KEY", &key)], "tls_cert"),
        (
            vec![("STARFIRE_TLS_CERT", &missing), ("STARFIRE_TLS_KEY", &key)],
            "cannot read the TLS certificate",
        ),
        (
            vec![
                ("STARFIRE_TLS_CERT", &cert),
                ("STARFIRE_TLS_KEY", &other_key),
            ],
            "does not match",
        ),
    ] {
        let mut env: Vec<(&str, &Path)> = env.into_iter().map(|(k, v)| (k, v.as_path())).collect();
        env.push(("STARFIRE_LISTEN", &listen));
        let mut process = start(&["serve"], &env, home.path());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running: {}",
                process.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success());
        assert!(
            process.log().contains(expected),
            "{expected}: {}",
            process.log()
        );
    }
}

#[actix_web::test]
async fn worker_terminates_tls() {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    let home = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let (cert, key) = install(&pair, home.path());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut worker = start(
        &[
            "worker",
            "--listen",
            &listen,
            "--model",
            model.to_str().unwrap(),
        ],
        &[("STARFIRE_TLS_CERT", &cert), ("STARFIRE_TLS_KEY", &key)],
        home.path(),
    );
    wait_for_port(port, &mut worker);
    let (tls, presented, _) = handshake(port, &connector(&[&pair.der], b"h2")).await;
    assert!(presented == pair.der);
    let mut sender = http2(tls).await;
    let (status, version, _) =
        status_of(sender.send_request(request("GET", "/health", "")).await).await;
    assert_eq!((status, version), (200, hyper::Version::HTTP_2));
}
