//! Keys and certificates made by `buildcat` itself: `server-keygen`, `client-keygen` and
//! `certificate-info`, so a secure farm needs no openssl.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::args::{CertificateInfoArgs, KeygenArgs};

/// Which side a key pair is for.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// `server.key`, `server.cert`, `server.pem`.
    Server,
    /// `client.key`, `client.cert`, `client.pem`.
    Client,
}

impl Side {
    fn stem(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// Creates `path` for writing: refused if it exists (unless `force`), and readable by its
/// owner only when `private`.
fn create(path: &Path, force: bool, private: bool) -> anyhow::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    // Windows has no mode bits: the file takes its folder's access list (a user's profile
    // folder is the user's own), so keep keys there.
    #[cfg(not(unix))]
    let _ = private;
    let file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} already exists; pass --force to replace it",
            path.display()
        ),
        _ => anyhow::anyhow!("could not create {}: {e}", path.display()),
    })?;
    #[cfg(unix)]
    if private {
        // `mode` applies only to new files; a replaced key must not stay readable by others.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("could not restrict {}", path.display()))?;
    }
    Ok(file)
}

/// `server-keygen` and `client-keygen`.
pub fn keygen(side: Side, args: KeygenArgs) -> anyhow::Result<ExitCode> {
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let name = args.name.clone().unwrap_or_else(|| match side {
        Side::Server => "localhost".to_owned(),
        Side::Client => hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "buildcat-client".to_owned()),
    });
    let stem = side.stem();
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| {
        anyhow::anyhow!(
            "could not create the directory {}: {}",
            dir.display(),
            e.to_string().to_lowercase()
        )
    })?;
    let paths = [
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.cert")),
        dir.join(format!("{stem}.pem")),
    ];
    if !args.force
        && let Some(existing) = paths.iter().find(|path| path.exists())
    {
        bail!(
            "{} already exists; pass --force to replace it",
            existing.display()
        );
    }

    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name.as_str());
    let fields = [
        (DnType::CountryName, &args.country),
        (DnType::StateOrProvinceName, &args.state),
        (DnType::LocalityName, &args.locality),
        (DnType::OrganizationName, &args.organization),
        (DnType::OrganizationalUnitName, &args.unit),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            subject.push(field, value.as_str());
        }
    }
    if let Some(email) = &args.email {
        // emailAddress (PKCS #9), as openssl writes it.
        subject.push(
            DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
            email.as_str(),
        );
    }
    params.distinguished_name = subject;
    // The name as a subject alternative name, so clients can verify the server by it.
    let san = match name
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            name.clone()
                .try_into()
                .with_context(|| format!("`{name}` is neither a host name nor an IP address"))?,
        ),
    };
    params.subject_alt_names = vec![san];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    let key = KeyPair::generate().context("could not generate a key")?;
    let cert = params
        .self_signed(&key)
        .context("could not make the certificate")?;
    let key_pem = key.serialize_pem();
    let cert_pem = cert.pem();

    let [key_path, cert_path, pem_path] = &paths;
    create(key_path, args.force, true)?.write_all(key_pem.as_bytes())?;
    create(cert_path, args.force, false)?.write_all(cert_pem.as_bytes())?;
    create(pem_path, args.force, true)?.write_all(format!("{key_pem}{cert_pem}").as_bytes())?;
    outln!(
        "wrote {}, {} and {}",
        key_path.display(),
        cert_path.display(),
        pem_path.display()
    );
    match side {
        Side::Server => outln!(
            "give {} to every client and worker (--tls-ca); keep {} on the server",
            cert_path.display(),
            key_path.display()
        ),
        Side::Client => outln!(
            "add {} to the server's --client-ca file; keep {} with this client",
            cert_path.display(),
            key_path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `certificate-info PATH`.
pub fn certificate_info(args: CertificateInfoArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.path)
        .with_context(|| format!("could not read {}", args.path.display()))?;
    let mut shown = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(&text) {
        let pem = pem.with_context(|| format!("{} is not valid PEM", args.path.display()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|e| {
            anyhow::anyhow!("{}: not a valid certificate: {e}", args.path.display())
        })?;
        if shown > 0 {
            outln!();
        }
        describe(&cert, &pem.contents);
        shown += 1;
    }
    if shown == 0 {
        bail!(
            "{} holds no certificate (expected a PEM file with a `BEGIN CERTIFICATE` block)",
            args.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(cert: &X509Certificate<'_>, der: &[u8]) {
    outln!("subject: {}", cert.subject());
    outln!("issuer: {}", cert.issuer());
    outln!("serial: {}", cert.raw_serial_as_string());
    let validity = cert.validity();
    outln!("not before: {}", validity.not_before);
    outln!("not after: {}", validity.not_after);
    let state = if validity.is_valid() {
        "valid now".to_owned()
    } else {
        "NOT valid now".to_owned()
    };
    outln!("validity: {state}");
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(format!("DNS:{dns}")),
                GeneralName::IPAddress(bytes) => names.push(format!("IP:{}", ip_text(bytes))),
                GeneralName::RFC822Name(mail) => names.push(format!("email:{mail}")),
                other => names.push(format!("{other:?}")),
            }
        }
    }
    outln!(
        "subject alternative names: {}",
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        }
    );
    outln!("sha256 fingerprint: {}", fingerprint(der));
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

/// The SHA-256 of the DER bytes as colon-separated hex, as browsers and openssl show it.
fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
