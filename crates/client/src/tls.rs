//! TLS with mutual certificates, for clients and workers.
//!
//! A farm with TLS on authenticates both ways: the client checks the server's certificate
//! against `ca` (usually the server's own self-signed `server.cert`) and the name it dialed;
//! the server checks the client's certificate against its `--client-ca` list.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;

/// Where a client's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Certificates the server's certificate must chain to (its `server.cert`).
    pub ca: PathBuf,
    /// This client's certificate (`client.cert`).
    pub cert: PathBuf,
    /// This client's private key (`client.key`).
    pub key: PathBuf,
}

impl TlsOptions {
    /// The files under `~/.buildcat/`: `server.cert`, `client.cert`, `client.key`.
    pub fn in_home() -> Option<TlsOptions> {
        let home = std::env::var_os("HOME").map(PathBuf::from)?;
        let dir = home.join(".buildcat");
        Some(TlsOptions {
            ca: dir.join("server.cert"),
            cert: dir.join("client.cert"),
            key: dir.join("client.key"),
        })
    }

    /// A TLS client configuration from these files.
    pub fn connector(&self) -> Result<TlsConnector, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(&self.ca, "--tls-ca")? {
            roots.add(cert).map_err(|e| {
                tls_file(
                    &self.ca,
                    "--tls-ca",
                    &format!("not a usable CA certificate: {e}"),
                )
            })?;
        }
        let chain = read_certs(&self.cert, "--tls-cert")?;
        let key = read_key(&self.key, "--tls-key")?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_file(&self.cert, "--tls-cert", &e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                tls_file(
                    &self.key,
                    "--tls-key",
                    &format!(
                        "does not match the certificate {}: {e}",
                        self.cert.display()
                    ),
                )
            })?;
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

fn tls_file(path: &Path, flag: &str, problem: &str) -> ClientError {
    ClientError::TlsSetup(format!("{flag} {}: {problem}", path.display()))
}

/// Every certificate in a PEM file.
pub fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_file(path, flag, &describe_pem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file(path, flag, &describe_pem(&e)))?;
    if certs.is_empty() {
        return Err(tls_file(
            path,
            flag,
            "holds no certificate (no BEGIN CERTIFICATE block)",
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_file(path, flag, &describe_pem(&e)))
}

fn describe_pem(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) if e.kind() == io::ErrorKind::NotFound => {
            "does not exist (make it with `buildcat server-keygen` or `client-keygen`)".to_owned()
        }
        rustls::pki_types::pem::Error::NoItemsFound => {
            "holds no PEM item of the right kind".to_owned()
        }
        other => format!("cannot be read: {other}"),
    }
}

/// The host part of `host:port`, as a TLS server name.
fn server_name(addr: &str) -> Result<ServerName<'static>, ClientError> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| ClientError::Tls {
        addr: addr.to_owned(),
        reason: format!("`{host}` is not a valid name to check the server's certificate against"),
    })
}

/// Runs the TLS handshake on a connected socket.
pub async fn handshake(
    connector: &TlsConnector,
    addr: &str,
    tcp: TcpStream,
) -> Result<Stream, ClientError> {
    let name = server_name(addr)?;
    match connector.connect(name, tcp).await {
        Ok(stream) => Ok(Stream::Tls(Box::new(stream))),
        Err(error) => Err(ClientError::Tls {
            addr: addr.to_owned(),
            reason: explain(&error),
        }),
    }
}

/// What a TLS failure means for a person running buildcat.
pub fn explain(error: &io::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
                "the server closed the connection during the TLS handshake ({error}); is it \
                 running without TLS? Then leave out the --tls flags"
            ),
            _ => error.to_string(),
        };
    };
    match tls {
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for the name this program dialed; connect \
             by a name the certificate carries (see `buildcat certificate-info`) or remake it \
             with `buildcat server-keygen --name HOST`"
                .to_owned()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server's certificate has expired; remake it with `buildcat server-keygen`"
                .to_owned()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | Error::InvalidCertificate(CertificateError::BadSignature) => {
            "the server's certificate is not trusted by --tls-ca (give the server's own \
             server.cert)"
                .to_owned()
        }
        Error::InvalidCertificate(other) => {
            format!("the server's certificate is refused: {other:?}")
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server does not speak TLS; is it running without --tls-cert? Then leave out \
             the --tls flags"
                .to_owned()
        }
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError,
        ) => "the server refused this program's certificate: add its client.cert to the \
              server's --client-ca file"
            .to_owned(),
        Error::AlertReceived(AlertDescription::CertificateExpired) => {
            "the server refused this program's certificate because it has expired; remake it \
             with `buildcat client-keygen`"
                .to_owned()
        }
        Error::AlertReceived(alert) => format!("the server ended the TLS session: {alert:?}"),
        other => other.to_string(),
    }
}

/// A connection to the server: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
