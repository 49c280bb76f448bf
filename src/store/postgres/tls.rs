//! TLS for the session, with the rustls (aws-lc) the job's HTTP and SMTP clients use.
//!
//! - `require`: encrypted, and the server's certificate is **not** verified (libpq's
//!   `require`): the handshake's signatures are checked, so the session is with
//!   whoever holds the presented certificate's key, but that certificate may be anyone's.
//!   It protects from listening on the network, not from a server impersonated on the
//!   way. Over TLS the password exchange (SCRAM) is bound to the certificate the client
//!   saw (channel binding, when the server offers it), so a relay in the middle cannot
//!   reuse it.
//! - `verify-ca`: the certificate chains to a trusted root; any host name is accepted.
//! - `verify-full`: the certificate chains to a trusted root and names the host of the
//!   URL (a DNS name, or an IP address in an IP SAN).
//!
//! The trusted roots: the system's, through `rustls-platform-verifier` as for HTTP and
//! SMTP, or the certificates of the PEM file `sslrootcert` names (then only those).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;
use super::settings::{Roots, Settings, SslMode};

/// The connector for `settings`, or `None` for `sslmode=disable`. Reads the
/// `sslrootcert` file, if any.
pub(super) fn connector(settings: &Settings) -> Result<Option<MakeRustlsConnect>, PgError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match settings.sslmode {
        SslMode::Disable => return Ok(None),
        SslMode::Require => Arc::new(AnyCertificate(Arc::clone(&provider))),
        SslMode::VerifyCa => Arc::new(AnyName(trusted(settings, &provider)?)),
        SslMode::VerifyFull => trusted(settings, &provider)?,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls {
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The chain check against the system's roots or those of `sslrootcert`.
fn trusted(
    settings: &Settings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, PgError> {
    match &settings.roots {
        Roots::System => {
            let v = rustls_platform_verifier::Verifier::new(Arc::clone(provider)).map_err(|e| {
                PgError::Tls {
                    detail: format!("cannot load the system's trusted roots: {e}"),
                }
            })?;
            Ok(Arc::new(v))
        }
        Roots::File(path) => {
            let bad = |detail: String| PgError::RootCert {
                path: path.clone(),
                detail,
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| {
                    bad(format!("a certificate in it is not usable as a root: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(bad("it holds no PEM certificate".into()));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(provider),
            )
            .build()
            .map(|v| v as Arc<dyn ServerCertVerifier>)
            .map_err(|e| bad(e.to_string()))
        }
    }
}

/// `require`: any certificate, with the handshake's signatures still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked by the inner verifier; a certificate for another
/// name is accepted (the chain is checked before the name, so a name error means the
/// chain was good).
#[derive(Debug)]
struct AnyName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
