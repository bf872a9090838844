//! The fleet refuses a wrong enrollment secret, a revoked endpoint, an expired certificate and
//! an anonymous session, with a clear error, and stores nothing any of them sends.

mod common;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use vigil_agent::identity::{self, AgentIdentity, IdentityError};
use vigil_proto::AgentMessage;
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{Hello, HostFacts, agent_message};
use vigil_server::pki::FleetCa;
use vigil_server::{Server, ServerConfig};

const SECRET: &str = "fleet-auth-test-secret";

struct Running {
    fleet: String,
    api: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    ca_pem: String,
}

async fn start(data: &std::path::Path, rules: &std::path::Path) -> Running {
    let mut cfg = ServerConfig::new(
        data.to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        vec![rules.to_owned()],
    );
    cfg.enroll_secret = Some(SECRET.into());
    cfg.first_admin.password = Some(common::operator::ADMIN_PASSWORD.into());
    vigil_server::testing::for_data_dir(data)
        .await
        .apply(&mut cfg);
    let server = Server::bind(&cfg).await.unwrap();
    let fleet = format!("https://{}", server.fleet_addr());
    let api = format!("http://{}", server.api_addr());
    let ca_pem = std::fs::read_to_string(server.ca_path()).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.run(stop).await.unwrap() }
    });
    Running {
        fleet,
        api,
        stop,
        task,
        ca_pem,
    }
}

/// Opens a session with the given TLS settings and sends a Hello; the server's answer.
async fn open_session(fleet: &str, tls: ClientTlsConfig) -> Result<(), tonic::Status> {
    let channel = match identity::endpoint(fleet, tls).unwrap().connect().await {
        Ok(c) => c,
        Err(e) => return Err(tonic::Status::unavailable(format!("{e:?}"))),
    };
    let mut client = FleetClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello::default())),
    };
    tx.send(hello).await.unwrap();
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    inbound
        .message()
        .await?
        .map(|_| ())
        .ok_or_else(|| tonic::Status::aborted("no welcome"))
}

fn host() -> HostFacts {
    HostFacts {
        hostname: "auth-test".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_revoked_expired_and_anonymous_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let srv = start(data.path(), rules.path()).await;

    // Wrong secret: refused, nothing stored.
    let err = identity::enroll(
        &srv.fleet,
        agent_dir.path(),
        &srv.ca_pem,
        "wrong",
        host(),
        "",
    )
    .await
    .unwrap_err();
    match err {
        IdentityError::Refused(status) => {
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.message(), "wrong enrollment secret");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(AgentIdentity::load(agent_dir.path()).unwrap().is_none());

    // Anonymous TLS (no client certificate): no session.
    let anon = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&srv.ca_pem));
    let status = open_session(&srv.fleet, anon).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("client certificate is required"));

    // A real enrollment works, keeps the id the agent proposed, and its session opens…
    let proposed = uuid::Uuid::new_v4().to_string();
    let id = identity::enroll(
        &srv.fleet,
        agent_dir.path(),
        &srv.ca_pem,
        SECRET,
        host(),
        &proposed,
    )
    .await
    .unwrap();
    assert_eq!(id.sensor_id, proposed);
    open_session(&srv.fleet, id.client_tls()).await.unwrap();
    // …and nobody else can take that id by proposing it: they get their own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = identity::enroll(
        &srv.fleet,
        other_dir.path(),
        &srv.ca_pem,
        SECRET,
        host(),
        &proposed,
    )
    .await
    .unwrap();
    assert_ne!(other.sensor_id, proposed);

    // …until an operator revokes the endpoint.
    let res = {
        vigil_server::pki::install_crypto_provider();
        reqwest::Client::new()
    }
    .post(format!(
        "{}/api/v1/endpoints/{}/revoke",
        srv.api, id.sensor_id
    ))
    .bearer_auth(common::operator::admin_token(&srv.api))
    .send()
    .await
    .unwrap();
    assert!(res.status().is_success());
    let status = open_session(&srv.fleet, id.client_tls()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("revoked"), "{status:?}");
    // Renewal is refused too: a revoked endpoint cannot mint itself a new certificate.
    let err = id.renew(&srv.fleet, agent_dir.path()).await.unwrap_err();
    assert!(matches!(err, IdentityError::Refused(s) if s.code() == Code::PermissionDenied));

    // An expired certificate from the right CA: the TLS handshake itself fails.
    let ca = FleetCa::load_or_create(data.path()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = ca
        .issue_client_between(
            &csr,
            "expired-sensor",
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&srv.ca_pem))
        .identity(Identity::from_pem(&expired.cert_pem, key.serialize_pem()));
    assert!(
        open_session(&srv.fleet, tls).await.is_err(),
        "an expired certificate must be refused"
    );

    srv.stop.cancel();
    srv.task.await.unwrap();

    // Nothing any refused caller sent was stored: only the two real enrollments exist.
    let store = vigil_server::testing::for_data_dir(data.path())
        .await
        .open_store(data.path())
        .await;
    let mut ids: Vec<_> = store
        .endpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.facts.sensor_id)
        .collect();
    ids.sort();
    let mut expected = vec![id.sensor_id.clone(), other.sensor_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(store.events_after(0, 10).await.unwrap().events.is_empty());
}
