//! The server's side of TLS with mutual certificates.
//!
//! With TLS on, every peer must present a certificate that chains to one in `client_ca`
//! (the concatenated `client.cert` files of the farm's clients and workers, or a CA), and
//! gets the server's `cert`. A plain-TCP peer is told in a plain hello reply that TLS is
//! required, so its error says what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the server's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The server's certificate (`server.cert`).
    pub cert: PathBuf,
    /// The server's private key (`server.key`).
    pub key: PathBuf,
    /// The certificates (or CAs) of the clients and workers it accepts.
    pub client_ca: PathBuf,
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {flag} {}: {problem}", path.display())]
pub struct TlsSetupError {
    /// The flag that names the file.
    pub flag: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

fn problem(flag: &'static str, path: &Path, text: String) -> TlsSetupError {
    TlsSetupError {
        flag,
        path: path.to_owned(),
        problem: text,
    }
}

fn describe_pem(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "does not exist (make it with `buildcat server-keygen` or `client-keygen`)".to_owned()
        }
        rustls::pki_types::pem::Error::NoItemsFound => {
            "holds no PEM item of the right kind".to_owned()
        }
        other => format!("cannot be read: {other}"),
    }
}

fn certs(path: &Path, flag: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(flag, path, describe_pem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(flag, path, describe_pem(&e)))?;
    if certs.is_empty() {
        return Err(problem(flag, path, "holds no certificate".to_owned()));
    }
    Ok(certs)
}

impl ServerTls {
    /// The files under `~/.buildcat/`: `server.cert`, `server.key`, `clients.pem`.
    pub fn in_home() -> Option<ServerTls> {
        let home = std::env::var_os("HOME").map(PathBuf::from)?;
        let dir = home.join(".buildcat");
        Some(ServerTls {
            cert: dir.join("server.cert"),
            key: dir.join("server.key"),
            client_ca: dir.join("clients.pem"),
        })
    }

    /// A TLS acceptor for the HTTP shell: the same certificate, but no client certificate
    /// asked for (browsers and scrapers carry none; the HTTP token admits requests), and
    /// HTTP/1.1 offered by ALPN.
    ///
    /// # Errors
    /// When the certificate or key cannot be read or do not match.
    pub fn http_acceptor(&self) -> Result<TlsAcceptor, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs(&self.cert, "--tls-cert")?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| problem("--tls-key", &self.key, describe_pem(&e)))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| problem("--tls-cert", &self.cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                problem(
                    "--tls-key",
                    &self.key,
                    format!("does not match {}: {e}", self.cert.display()),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// A TLS acceptor that requires a trusted client certificate.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(&self.client_ca, "--client-ca")? {
            roots.add(cert).map_err(|e| {
                problem(
                    "--client-ca",
                    &self.client_ca,
                    format!("not a usable certificate: {e}"),
                )
            })?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| problem("--client-ca", &self.client_ca, e.to_string()))?;
        let chain = certs(&self.cert, "--tls-cert")?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| problem("--tls-key", &self.key, describe_pem(&e)))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| problem("--tls-cert", &self.cert, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| {
                problem(
                    "--tls-key",
                    &self.key,
                    format!("does not match {}: {e}", self.cert.display()),
                )
            })?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
