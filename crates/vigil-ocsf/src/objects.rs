//! OCSF objects shared by several classes.

use serde::{Deserialize, Serialize};

/// `metadata`: where the record came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Event id; filled by [`crate::Event::from_record`] when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// OCSF schema version.
    pub version: String,
    /// The product that produced the record.
    pub product: Product,
    /// Which capture source produced it (`ebpf`, `proc_connector`, …), or for records read
    /// from a log, the log (`/var/log/auth.log`, `journal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_name: Option<String>,
    /// For records read from a log: the program that logged it (the syslog identifier,
    /// `sshd`, `sudo`, `CRON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_provider: Option<String>,
    /// OCSF profiles the record uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

impl Metadata {
    /// Metadata for a record produced by Vigil itself.
    pub fn vigil(log_name: &str) -> Self {
        Self {
            uid: String::new(),
            version: crate::OCSF_VERSION.into(),
            product: Product::vigil(),
            log_name: Some(log_name.into()),
            log_provider: None,
            profiles: vec!["host".into(), "linux/linux_users".into()],
        }
    }
}

/// `product`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Product name.
    pub name: String,
    /// Vendor name.
    pub vendor_name: String,
    /// Product version.
    pub version: String,
}

impl Product {
    /// This build of Vigil.
    pub fn vigil() -> Self {
        Self {
            name: "Vigil".into(),
            vendor_name: "Vigil".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// `device`: the host the event happened on. Every attribute is optional on input, so partial
/// documents from third-party sensors still parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// Device type (1 = Server, 2 = Desktop, 0 = Unknown).
    pub type_id: u8,
    /// Host name.
    pub hostname: String,
    /// Vigil sensor id of the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Operating system.
    pub os: Os,
}

/// `os`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Os {
    /// OS name, e.g. `Linux`.
    pub name: String,
    /// OS type (200 = Linux).
    pub type_id: u16,
    /// Kernel release (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

/// `file`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Base name.
    pub name: String,
    /// Full path.
    pub path: String,
    /// File type (0 = Unknown, 1 = Regular File, 2 = Folder, 3 = Character Device, 4 = Block
    /// Device, 5 = Local Socket, 6 = Named Pipe, 7 = Symbolic Link).
    pub type_id: u8,
    /// Content hashes (`fingerprint` objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Fingerprint>,
    /// The folder holding the file (its path without the last component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder: Option<String>,
    /// The user owning the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<User>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Last content modification, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<i64>,
}

/// `fingerprint`: a hash of a file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// 3 = SHA-256.
    pub algorithm_id: u8,
    /// Caption of `algorithm_id`.
    pub algorithm: String,
    /// Lowercase hex digest.
    pub value: String,
}

impl Fingerprint {
    /// A SHA-256 fingerprint.
    pub fn sha256(hex: impl Into<String>) -> Self {
        Self {
            algorithm_id: 3,
            algorithm: "SHA-256".into(),
            value: hex.into(),
        }
    }
}

impl File {
    /// A regular file at `path`.
    pub fn regular(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path).to_owned();
        Self {
            name,
            path: path.to_owned(),
            type_id: 1,
            ..Default::default()
        }
    }

    /// A file system object of type `type_id` at `path`, with its `parent_folder` (`None` for
    /// `/`).
    pub fn at(path: &str, type_id: u8) -> Self {
        let parent_folder = match path.rsplit_once('/') {
            Some(("", rest)) if !rest.is_empty() => Some("/".to_owned()),
            Some((parent, _)) if !parent.is_empty() => Some(parent.to_owned()),
            _ => None,
        };
        Self {
            parent_folder,
            type_id,
            ..Self::regular(path)
        }
    }
}

/// `user`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// User name, when it could be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Numeric user id as a string (OCSF `uid` is a string); empty (and left out) when only
    /// the name is known, as for a log line naming an account that does not exist.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// User type (1 = User, 3 = System).
    #[serde(default)]
    pub type_id: u8,
}

/// `actor`: who performed the activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::Process>,
    /// The acting user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}
