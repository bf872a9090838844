//! The fleet's public-key infrastructure: a CA created on first start, the fleet listener's
//! server certificate, and agent client certificates issued from certificate signing requests.
//!
//! Files in the data directory: `fleet-ca.crt`, `fleet-ca.key` (0600), `fleet-server.crt`,
//! `fleet-server.key` (0600), `enroll.secret` (0600). Agents keep their private key: they send
//! a CSR and receive a certificate; the server never sees an agent key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

#[cfg(test)]
mod tests;

/// How long the fleet CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long the fleet server certificate is valid; it is re-issued at start when it has less
/// than a quarter left, or when its names changed.
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Clock skew tolerated: certificates start this much in the past.
const BACKDATE: Duration = Duration::from_secs(300);

/// A PKI failure.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A key or certificate file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate file exists but cannot be used.
    #[error("{} is not a usable key or certificate: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certificate signing request was refused.
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    /// Signing failed.
    #[error("certificate generation failed: {0}")]
    Sign(#[from] rcgen::Error),
}

/// The fleet CA, able to issue certificates.
pub struct FleetCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// SHA-256 of its DER, lower-case hex: how the server recognises it.
    pub fingerprint: String,
    /// Expiry, ms since the epoch.
    pub not_after_ms: i64,
}

/// The fleet listener's TLS identity.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
}

impl FleetCa {
    /// Loads the CA from `dir`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join("fleet-ca.crt");
        let key_path = dir.join("fleet-ca.key");
        if cert_path.exists() || key_path.exists() {
            let key_pem = read(&key_path)?;
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| corrupt(&key_path, &e))?;
            let issuer =
                Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| corrupt(&cert_path, &e))?;
            return Ok(Self { cert_pem, issuer });
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("Vigil fleet CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        tracing::info!(path = %cert_path.display(), "Created the fleet CA");
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (what agents trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The fleet listener's certificate for `names` (DNS names or IP addresses), kept in `dir`
    /// and re-issued when missing, expiring, or issued for other names.
    pub fn server_identity(
        &self,
        dir: &Path,
        names: &[String],
    ) -> Result<ServerIdentity, PkiError> {
        let cert_path = dir.join("fleet-server.crt");
        let key_path = dir.join("fleet-server.key");
        let names_path = dir.join("fleet-server.names");
        let wanted = names.join("\n");
        if let (Ok(cert_pem), Ok(key_pem), Ok(had)) =
            (read(&cert_path), read(&key_path), read(&names_path))
        {
            let fresh = read(&dir.join("fleet-server.not_after"))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .is_some_and(|not_after| {
                    let quarter = i64::try_from(SERVER_VALIDITY.as_millis() / 4).unwrap_or(0);
                    not_after - vigil_ocsf::now_ms() > quarter
                });
            if had == wanted && fresh {
                return Ok(ServerIdentity { cert_pem, key_pem });
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        params.distinguished_name = dn("Vigil fleet server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_VALIDITY;
        let cert = params.signed_by(&key, &self.issuer)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        write_public(&names_path, &wanted)?;
        write_public(
            &dir.join("fleet-server.not_after"),
            &to_ms(params.not_after).to_string(),
        )?;
        Ok(ServerIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a client certificate for `sensor_id` from an agent's CSR, valid from now (less
    /// a small backdate for clock skew) for `validity`. The CSR's own names and extensions are
    /// ignored: the server decides what the certificate says.
    pub fn issue_client(
        &self,
        csr_pem: &str,
        sensor_id: &str,
        validity: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.issue_client_between(csr_pem, sensor_id, now - BACKDATE, now + validity)
    }

    /// Issues a client certificate with an explicit validity window (tests use it to make
    /// expired certificates).
    pub fn issue_client_between(
        &self,
        csr_pem: &str,
        sensor_id: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCert, PkiError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(PkiError::Csr("larger than 16 KiB".into()));
        }
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Csr(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(sensor_id);
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:vigil:sensor:{sensor_id}")
                .try_into()
                .map_err(|e: rcgen::Error| PkiError::Csr(e.to_string()))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_after;
        csr.params = params;
        let cert = csr.signed_by(&self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            fingerprint: fingerprint(cert.der()),
            not_after_ms: to_ms(not_after),
        })
    }
}

/// SHA-256 of a DER certificate, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// SHA-256 of a secret or token, lower-case hex (what the store keeps instead of the secret).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A fresh random secret: 32 bytes, hex.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The enrollment secret: from `configured` if given, else `enroll.secret` in `dir`, created
/// (0600) on first start.
pub fn enrollment_secret(dir: &Path, configured: Option<&str>) -> Result<String, PkiError> {
    if let Some(s) = configured.filter(|s| !s.is_empty()) {
        return Ok(s.to_owned());
    }
    let path = dir.join("enroll.secret");
    match read(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            let secret = random_secret();
            write_private(&path, &secret)?;
            Ok(secret)
        }
    }
}

fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Vigil");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(name: &str) -> Result<SanType, rcgen::Error> {
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(name.try_into()?)),
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn corrupt(path: &Path, e: &dyn std::fmt::Display) -> PkiError {
    PkiError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Writes a file readable by its owner only (0600), replacing it atomically.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o644)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Makes ring the process's rustls crypto provider (the one the fleet TLS uses), for HTTPS
/// clients (the action webhook, the CLI) that take the process default. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
