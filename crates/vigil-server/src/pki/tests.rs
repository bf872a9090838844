use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};

use super::*;

fn csr() -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    (key, csr)
}

#[test]
fn ca_is_created_once_with_a_private_key_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = FleetCa::load_or_create(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join("fleet-ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = FleetCa::load_or_create(dir.path()).unwrap();
    assert_eq!(ca.cert_pem(), again.cert_pem());
}

#[test]
fn client_certificates_come_from_csrs_and_have_distinct_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let ca = FleetCa::load_or_create(dir.path()).unwrap();
    let (_, csr1) = csr();
    let (_, csr2) = csr();
    let a = ca
        .issue_client(&csr1, "sensor-a", Duration::from_secs(3600))
        .unwrap();
    let b = ca
        .issue_client(&csr2, "sensor-b", Duration::from_secs(3600))
        .unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_eq!(a.fingerprint.len(), 64);
    assert!(a.not_after_ms > vigil_ocsf::now_ms());
    assert!(matches!(
        ca.issue_client("junk", "x", Duration::from_secs(1)),
        Err(PkiError::Csr(_))
    ));
}

#[test]
fn server_identity_is_reused_until_names_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = FleetCa::load_or_create(dir.path()).unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let a = ca.server_identity(dir.path(), &names).unwrap();
    let b = ca.server_identity(dir.path(), &names).unwrap();
    assert_eq!(a.cert_pem, b.cert_pem);
    let c = ca
        .server_identity(dir.path(), &["other.example".to_owned()])
        .unwrap();
    assert_ne!(a.cert_pem, c.cert_pem);
}

#[test]
fn enrollment_secret_is_generated_once_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = enrollment_secret(dir.path(), None).unwrap();
    assert_eq!(s1, enrollment_secret(dir.path(), None).unwrap());
    assert_eq!(
        enrollment_secret(dir.path(), Some("given")).unwrap(),
        "given"
    );
    assert!(constant_time_eq(&s1, &s1.clone()));
    assert!(!constant_time_eq(&s1, "x"));
}
