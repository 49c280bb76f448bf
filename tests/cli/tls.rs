//! The provider's API over real HTTPS: a TLS front on 127.0.0.1 with a certificate from
//! a private CA made for the test, forwarding to the sandbox. An untrusted certificate
//! fails the run at once; the private CA named by `SSL_CERT_FILE` is trusted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestEnv, code, scalar, text};

fn small() -> cp_recon::sandbox::SandboxConfig {
    cp_recon::sandbox::SandboxConfig::new(cp_recon::sandbox::DataSpec::small(7, chrono::Utc::now()))
}

/// A TLS server on 127.0.0.1 port 0 that forwards every connection to `upstream`;
/// counts the connections it was offered (each is one handshake).
struct TlsFront {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// The private CA's certificate, PEM, in a file of its own.
    ca_file: PathBuf,
    /// Another CA's certificate, which signed nothing this server presents.
    other_ca_file: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    async fn start(upstream: SocketAddr) -> Self {
        // A private CA and a server certificate it signs, for localhost and 127.0.0.1.
        let (ca, ca_key, ca_cert) = certificate_authority("cp-recon test CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let (_, _, other_ca_cert) = certificate_authority("another CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut server =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = server.signed_by(&key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("private-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&other_ca_file, other_ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    cert.der().clone(),
                    CertificateDer::from(ca_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self {
            addr,
            connections,
            ca_file,
            other_ca_file,
            _dir: dir,
            task,
        }
    }

    fn base_url(&self) -> String {
        format!("https://localhost:{}/api", self.addr.port())
    }
}

/// A self-signed CA: its parameters, key and certificate.
fn certificate_authority(
    name: &str,
) -> (rcgen::CertificateParams, rcgen::KeyPair, rcgen::Certificate) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (params, key, cert)
}

/// The sandbox behind a TLS front, and a config that reaches it over HTTPS.
async fn over_https() -> (TestEnv, TlsFront) {
    let env = TestEnv::start(small()).await;
    let upstream: reqwest::Url = env.sandbox.base_url().parse().unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 1], upstream.port().expect("the sandbox's port")));
    let front = TlsFront::start(upstream).await;
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("base_url = \"{}\"", env.sandbox.base_url()),
        &format!("base_url = \"{}\"", front.base_url()),
    );
    assert!(text.contains(&front.base_url()));
    std::fs::write(&env.config, text).unwrap();
    (env, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_provider_certificate_fails_the_run_at_once_and_says_so_first() {
    let (env, front) = over_https().await;
    // Trusting only a CA that signed nothing here (the system store may or may not be
    // installed; either way it does not hold the test's CA).
    let out = env
        .command(&["--run-now"])
        .env("SSL_CERT_FILE", &front.other_ca_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .await
        .unwrap();

    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_eq!(
        front.connections.load(Ordering::SeqCst),
        1,
        "one handshake, no retries\n{}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("retrying"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    let said = last
        .split_once("error=")
        .map(|(_, e)| e.trim_start_matches('"'))
        .unwrap_or_default();
    assert!(
        said.starts_with("the provider's certificate is not trusted: UnknownIssuer; see README"),
        "{}",
        text(&out)
    );
    assert!(env.sandbox.reconcile_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_named_by_ssl_cert_file_is_trusted() {
    let (env, front) = over_https().await;
    let out = env
        .command(&["--run-now"])
        .env("SSL_CERT_FILE", &front.ca_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .await
        .unwrap();

    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(front.connections.load(Ordering::SeqCst) >= 1);
    let store = env.store();
    let completed: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM runs WHERE outcome = 'completed'",
    );
    assert_eq!(completed, 1);
    assert!(!env.sandbox.reconcile_calls().is_empty());
}
