//! TLS to the database, as libpq's `sslmode` and `sslrootcert` say, through rustls (the TLS
//! the rest of buildcat speaks) and `tokio-postgres-rustls`'s connector.
//!
//! The `postgres` crate knows only `disable`, `prefer` and `require`, and no `sslrootcert`,
//! so both are taken out of the address here ([`split`]) and the crate is told only whether
//! to ask for TLS; how the server's certificate is checked is ours:
//!
//! - `disable`: no TLS.
//! - `prefer` (libpq's default): TLS when the database offers it, without checking its
//!   certificate, else a plain connection: it keeps passive listeners out, not an active
//!   impostor, exactly as with libpq.
//! - `require`: TLS or no connection; the certificate is checked against `sslrootcert` as
//!   `verify-ca` does when one is given (libpq does the same), else not at all.
//! - `verify-ca`: the certificate must be signed by a CA in `sslrootcert`.
//! - `verify-full`: that, and it must name the host the address gives.
//!
//! `sslrootcert` defaults to `~/.postgresql/root.crt` as in libpq; `verify-ca` and
//! `verify-full` without a CA file fail with a message that says what to give.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the database's certificate is checked, from `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS if offered, unchecked.
    #[default]
    Prefer,
    /// TLS always; checked only against a CA file given.
    Require,
    /// TLS, signed by a CA of the CA file.
    VerifyCa,
    /// TLS, signed by a CA of the CA file and naming the host.
    VerifyFull,
}

impl TlsMode {
    /// The mode `sslmode=text` names.
    fn parse(text: &str) -> Result<TlsMode, String> {
        match text {
            "disable" => Ok(TlsMode::Disable),
            "allow" | "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    /// What the `postgres` crate is told: whether to ask for TLS and whether to insist.
    pub(super) fn ssl_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS settings of a database address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TlsSettings {
    /// `sslmode`.
    pub(super) mode: TlsMode,
    /// `sslrootcert`: the CA file that signs the database's certificate.
    pub(super) root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `address` (a `postgresql://` URL or libpq's
/// `key=value` form), which the `postgres` crate reads without them.
pub(super) fn split(address: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => settings.mode = TlsMode::parse(value)?,
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if let Some((base, query)) = address
        .contains("://")
        .then(|| address.split_once('?'))
        .flatten()
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, &percent_decode(value))? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if address.contains("://") {
        address.to_owned()
    } else {
        let mut kept = Vec::new();
        for word in address.split_whitespace() {
            let taken = match word.split_once('=') {
                Some((key, value)) => take(key.trim(), value.trim_matches('\''))?,
                None => false,
            };
            if !taken {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, settings))
}

/// `%XX` escapes of a URL's query value decoded (a path to a CA file may hold spaces).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| value.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's default CA file, `~/.postgresql/root.crt`, if it exists.
fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql").join("root.crt");
    path.exists().then_some(path)
}

/// The connector for `settings`: a rustls client that checks the database's certificate as
/// the mode says.
pub(super) fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_cert = settings.root_cert.clone().or_else(default_root_cert);
    let check = match (settings.mode, &root_cert) {
        (TlsMode::Disable | TlsMode::Prefer, _) | (TlsMode::Require, None) => Check::Nothing,
        (TlsMode::Require | TlsMode::VerifyCa, Some(path)) => Check::Ca(path.clone()),
        (TlsMode::VerifyFull, Some(path)) => Check::Full(path.clone()),
        (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
            return Err(
                "sslmode=verify-ca and verify-full check the database's certificate against a \
                 CA: give its file as sslrootcert=PATH in the address (or put it at \
                 ~/.postgresql/root.crt)"
                    .to_owned(),
            );
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked {
            provider: provider.clone(),
        }),
        Check::Ca(path) => Arc::new(AnyName {
            inner: webpki_verifier(&path, &provider)?,
        }),
        Check::Full(path) => webpki_verifier(&path, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("could not set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What a connector checks of the database's certificate.
enum Check {
    /// Nothing (the connection is encrypted, not authenticated).
    Nothing,
    /// Its chain up to a CA of the file.
    Ca(PathBuf),
    /// Its chain and its host name.
    Full(PathBuf),
}

/// rustls's standard check against the CAs in `path`.
fn webpki_verifier(
    path: &std::path::Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let shown = path.display();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("could not read sslrootcert {shown}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("could not read sslrootcert {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown} holds a certificate rustls refuses: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {shown} holds no PEM certificate; give the CA that signed the \
             database's certificate"
        ));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("could not use sslrootcert {shown}: {e}"))
}

/// `verify-ca`: the standard check, except for the host name.
#[derive(Debug)]
struct AnyName {
    /// The standard check.
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer`, and `require` without a CA file: any certificate, as libpq takes it; the
/// handshake's signatures are still checked, so the session is with the certificate's key.
#[derive(Debug)]
struct Unchecked {
    /// The signature algorithms.
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sslmode` and `sslrootcert` come out of both address forms; the rest stays.
    #[test]
    fn splits_tls_settings_out_of_addresses() {
        let cases = [
            (
                "postgresql://u@h:5/db?sslmode=verify-full&sslrootcert=/a%20b/ca.pem",
                "postgresql://u@h:5/db",
                TlsMode::VerifyFull,
                Some("/a b/ca.pem"),
            ),
            (
                "postgresql://u@h/db?application_name=x&sslmode=require",
                "postgresql://u@h/db?application_name=x",
                TlsMode::Require,
                None,
            ),
            (
                "postgresql://u@h/db",
                "postgresql://u@h/db",
                TlsMode::Prefer,
                None,
            ),
            (
                "host=h sslmode=disable dbname=db",
                "host=h dbname=db",
                TlsMode::Disable,
                None,
            ),
        ];
        for (address, rest, mode, root) in cases {
            let (left, settings) = split(address).expect("a valid address");
            assert_eq!(left, rest, "{address}");
            assert_eq!(settings.mode, mode, "{address}");
            assert_eq!(settings.root_cert, root.map(PathBuf::from), "{address}");
        }
        let error = split("postgresql://h/db?sslmode=sometimes").expect_err("refused");
        assert!(error.contains("sslmode=sometimes"), "{error}");
    }

    /// Checking a certificate needs a CA to check it against.
    #[test]
    fn verify_modes_need_a_ca_file() {
        let settings = TlsSettings {
            mode: TlsMode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let error = connector(&settings).err().expect("refused");
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
