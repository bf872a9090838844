//! The agent's fleet identity: its private key (generated here, never sent), the client
//! certificate the fleet CA issued for it, the CA it trusts, and its HTTP API token.
//!
//! Files in the data directory: `agent.key` and `identity.json` (0600), `agent.crt`,
//! `fleet-ca.crt`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity as TlsIdentity};
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{EnrollRequest, EnrollResponse, HostFacts, RenewRequest};

/// Why the agent has no usable identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// An identity file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The stored identity is unreadable.
    #[error("stored identity {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No identity yet, and nothing to enroll with.
    #[error("not enrolled and {0}")]
    CannotEnroll(&'static str),
    /// Key or CSR generation failed.
    #[error("key generation failed: {0}")]
    Key(#[from] rcgen::Error),
    /// The server could not be reached.
    #[error("cannot reach the fleet server: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The server refused.
    #[error("the fleet server refused: {}", .0.message())]
    Refused(#[from] tonic::Status),
}

/// What is kept in `identity.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    sensor_id: String,
    issued_ms: i64,
    not_after_ms: i64,
    api_token: String,
}

/// An enrolled agent's identity.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// Sensor id assigned by the server.
    pub sensor_id: String,
    /// Client certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    key_pem: String,
    /// The fleet CA, PEM.
    pub ca_pem: String,
    /// When the certificate was obtained, ms since the epoch.
    pub issued_ms: i64,
    /// Certificate expiry, ms since the epoch.
    pub not_after_ms: i64,
    /// Token for the HTTP fleet API.
    pub api_token: String,
}

impl AgentIdentity {
    /// Loads the identity from `dir`; `None` when the agent never enrolled.
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let meta = dir.join("identity.json");
        if !meta.exists() {
            return Ok(None);
        }
        let stored: Stored =
            serde_json::from_str(&read(&meta)?).map_err(|e| IdentityError::Corrupt {
                path: meta.clone(),
                reason: e.to_string(),
            })?;
        Ok(Some(Self {
            sensor_id: stored.sensor_id,
            cert_pem: read(&dir.join("agent.crt"))?,
            key_pem: read(&dir.join("agent.key"))?,
            ca_pem: read(&dir.join("fleet-ca.crt"))?,
            issued_ms: stored.issued_ms,
            not_after_ms: stored.not_after_ms,
            api_token: stored.api_token,
        }))
    }

    /// Whether two thirds of the certificate's lifetime have passed.
    pub fn needs_renewal(&self, now_ms: i64) -> bool {
        let life = self.not_after_ms - self.issued_ms;
        now_ms >= self.issued_ms + life * 2 / 3
    }

    /// Whether the certificate has expired.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.not_after_ms
    }

    /// TLS settings for mutually authenticated calls.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(TlsIdentity::from_pem(&self.cert_pem, &self.key_pem))
    }

    fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        write(&dir.join("agent.key"), &self.key_pem, 0o600)?;
        write(&dir.join("agent.crt"), &self.cert_pem, 0o644)?;
        write(&dir.join("fleet-ca.crt"), &self.ca_pem, 0o644)?;
        let stored = Stored {
            sensor_id: self.sensor_id.clone(),
            issued_ms: self.issued_ms,
            not_after_ms: self.not_after_ms,
            api_token: self.api_token.clone(),
        };
        let json = serde_json::to_string_pretty(&stored).map_err(|e| IdentityError::Corrupt {
            path: dir.join("identity.json"),
            reason: e.to_string(),
        })?;
        write(&dir.join("identity.json"), &json, 0o600)
    }

    /// Asks the server for a fresh certificate over the current one, and stores it.
    pub async fn renew(&self, server: &str, dir: &Path) -> Result<Self, IdentityError> {
        let (key_pem, csr_pem) = new_key_and_csr()?;
        let mut client = FleetClient::new(endpoint(server, self.client_tls())?.connect().await?);
        let resp = client.renew(RenewRequest { csr_pem }).await?.into_inner();
        let renewed = Self {
            api_token: self.api_token.clone(),
            ..from_response(resp, key_pem)
        };
        renewed.save(dir)?;
        Ok(renewed)
    }
}

/// Enrolls with the enrollment secret, trusting `ca_pem` for the server, and stores the
/// identity in `dir`.
pub async fn enroll(
    server: &str,
    dir: &Path,
    ca_pem: &str,
    secret: &str,
    host: HostFacts,
    proposed_sensor_id: &str,
) -> Result<AgentIdentity, IdentityError> {
    let (key_pem, csr_pem) = new_key_and_csr()?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    let mut client = FleetClient::new(endpoint(server, tls)?.connect().await?);
    let req = EnrollRequest {
        secret: secret.to_owned(),
        host: Some(host),
        csr_pem,
        proposed_sensor_id: proposed_sensor_id.to_owned(),
    };
    let resp = client.enroll(req).await?.into_inner();
    let id = from_response(resp, key_pem);
    id.save(dir)?;
    Ok(id)
}

fn from_response(resp: EnrollResponse, key_pem: String) -> AgentIdentity {
    AgentIdentity {
        sensor_id: resp.sensor_id,
        cert_pem: resp.cert_pem,
        key_pem,
        ca_pem: resp.ca_pem,
        issued_ms: vigil_ocsf::now_ms(),
        not_after_ms: resp.not_after,
        api_token: resp.api_token,
    }
}

/// A gRPC endpoint for the fleet server with TLS.
pub fn endpoint(server: &str, tls: ClientTlsConfig) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(server.to_owned())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
}

fn new_key_and_csr() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    Ok((key.serialize_pem(), csr))
}

fn read(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), IdentityError> {
    write_atomic(path, text.as_bytes(), mode).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file only its owner can read (0600), atomically: temporary file, fsync, rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, 0o600)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_after_two_thirds() {
        let id = AgentIdentity {
            sensor_id: "s".into(),
            cert_pem: String::new(),
            key_pem: String::new(),
            ca_pem: String::new(),
            issued_ms: 0,
            not_after_ms: 300,
            api_token: String::new(),
        };
        assert!(!id.needs_renewal(199));
        assert!(id.needs_renewal(200));
        assert!(!id.expired(299));
        assert!(id.expired(300));
    }
}
