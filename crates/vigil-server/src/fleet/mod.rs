//! The fleet role: the gRPC endpoint agents hold their session with. It stores each batch
//! durably, then acks it, then announces it on the bus.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::fleet::fleet_server::{Fleet, FleetServer};
use vigil_proto::fleet::{
    Ack, Command as WireCommand, CommandResult, EnrollRequest, EnrollResponse, Heartbeat, Hello,
    PriorityBatch, RenewRequest, Welcome,
};
use vigil_proto::{AgentMessage, EventBatch, ServerMessage, agent_message, server_message};

use crate::ingest::Ingestor;
use crate::pki::{self, FleetCa};
use crate::response::Responder;
use crate::store::{CapabilityRecord, CertRecord, EndpointFacts, HeartbeatRecord, Store};

mod sessions;

pub use sessions::{SessionHandle, Sessions};

/// Replies queued per session before the server stops reading that agent (backpressure).
const OUTBOUND_DEPTH: usize = 64;

/// The gRPC fleet service.
#[derive(Clone)]
pub struct FleetService {
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    enrollment: Arc<Enrollment>,
    sessions: Sessions,
    ingest: Ingestor,
    responder: Responder,
}

/// What enrollment needs: the CA, the secret's hash and the certificate lifetime.
pub struct Enrollment {
    /// The fleet CA.
    pub ca: Arc<FleetCa>,
    /// SHA-256 of the enrollment secret.
    pub secret_hash: String,
    /// Lifetime of issued client certificates.
    pub cert_validity: std::time::Duration,
}

impl FleetService {
    /// A service over the given store; batches go through `ingest`; `shutdown` ends every
    /// open session.
    pub fn new(
        store: Arc<dyn Store>,
        enrollment: Arc<Enrollment>,
        sessions: Sessions,
        ingest: Ingestor,
        responder: Responder,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            shutdown,
            enrollment,
            sessions,
            ingest,
            responder,
        }
    }

    /// The endpoint the caller's client certificate belongs to; refuses anonymous callers,
    /// certificates this fleet never issued, and revoked endpoints.
    async fn authenticate<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated("a client certificate is required: enroll the agent first")
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
        let fingerprint = pki::fingerprint(leaf.as_ref());
        let identity = self
            .store
            .identify_certificate(&fingerprint)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                Status::unauthenticated(
                    "unknown client certificate: not issued to an endpoint of this fleet",
                )
            })?;
        if identity.revoked {
            return Err(Status::permission_denied(format!(
                "endpoint {} is revoked by an operator",
                identity.sensor_id
            )));
        }
        Ok(identity.sensor_id)
    }

    /// The tonic server wrapper with Vigil's message limits.
    pub fn into_server(self) -> FleetServer<Self> {
        FleetServer::new(self)
            .max_decoding_message_size(vigil_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(vigil_proto::MAX_MESSAGE_BYTES)
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Fleet for FleetService {
    type SessionStream = SessionStream;

    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let req = request.into_inner();
        let e = &self.enrollment;
        if !pki::constant_time_eq(&pki::hash_secret(&req.secret), &e.secret_hash) {
            tracing::warn!("Enrollment refused: wrong secret");
            return Err(Status::unauthenticated("wrong enrollment secret"));
        }
        let host = req.host.unwrap_or_default();
        let token = pki::random_secret();
        // The agent's own id when it proposes one no endpoint has; a fresh one otherwise.
        let proposed = uuid::Uuid::parse_str(&req.proposed_sensor_id)
            .ok()
            .map(|u| u.to_string());
        let mut attempt = 0;
        let (sensor_id, issued) = loop {
            let sensor_id = match (&proposed, attempt) {
                (Some(p), 0) => p.clone(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            attempt += 1;
            let issued =
                e.ca.issue_client(&req.csr_pem, &sensor_id, e.cert_validity)
                    .map_err(|err| Status::invalid_argument(err.to_string()))?;
            let facts = EndpointFacts {
                sensor_id: sensor_id.clone(),
                hostname: host.hostname.clone(),
                os_name: host.os_name.clone(),
                kernel_release: host.kernel_release.clone(),
                agent_version: host.agent_version.clone(),
                capabilities: Vec::new(),
            };
            let cert = CertRecord {
                fingerprint: issued.fingerprint.clone(),
                not_after: issued.not_after_ms,
            };
            match self
                .store
                .enroll_endpoint(
                    &facts,
                    &cert,
                    &pki::hash_secret(&token),
                    vigil_ocsf::now_ms(),
                )
                .await
            {
                Ok(()) => break (sensor_id, issued),
                Err(crate::store::StoreError::Conflict(_)) if attempt < 3 => {
                    tracing::info!(proposed = %sensor_id, "Proposed sensor id already enrolled; assigning another");
                }
                Err(error) => return Err(unavailable(error)),
            }
        };
        tracing::info!(sensor_id = %sensor_id, hostname = %host.hostname, "Endpoint enrolled");
        Ok(Response::new(EnrollResponse {
            sensor_id,
            cert_pem: issued.cert_pem,
            ca_pem: e.ca.cert_pem().to_owned(),
            not_after: issued.not_after_ms,
            api_token: token,
        }))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let sensor_id = self.authenticate(&request).await?;
        let req = request.into_inner();
        let e = &self.enrollment;
        let issued =
            e.ca.issue_client(&req.csr_pem, &sensor_id, e.cert_validity)
                .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let cert = CertRecord {
            fingerprint: issued.fingerprint,
            not_after: issued.not_after_ms,
        };
        self.store
            .add_certificate(&sensor_id, &cert, vigil_ocsf::now_ms())
            .await
            .map_err(unavailable)?;
        tracing::info!(sensor_id = %sensor_id, "Client certificate renewed");
        Ok(Response::new(EnrollResponse {
            sensor_id,
            cert_pem: issued.cert_pem,
            ca_pem: e.ca.cert_pem().to_owned(),
            not_after: issued.not_after_ms,
            api_token: String::new(),
        }))
    }

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let sensor_id = self.authenticate(&request).await?;
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(AgentMessage {
                msg: Some(agent_message::Msg::Hello(hello)),
            }) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first session message must be Hello",
                ));
            }
        };
        let facts = endpoint_facts(&sensor_id, &hello)?;
        self.store
            .upsert_endpoint(&facts, vigil_ocsf::now_ms())
            .await
            .map_err(unavailable)?;
        tracing::info!(sensor_id = %facts.sensor_id, hostname = %facts.hostname, "Agent session opened");

        let (tx, rx) = mpsc::channel(OUTBOUND_DEPTH);
        let risk = self
            .store
            .risk(&facts.sensor_id, vigil_ocsf::now_ms())
            .await
            .map_err(unavailable)?;
        let welcome = server_message::Msg::Welcome(Welcome {
            sensor_id: facts.sensor_id.clone(),
            risk_high_water: risk.high_water,
        });
        // The receiver is alive: it is returned below.
        let _ = tx.send(Ok(ServerMessage { msg: Some(welcome) })).await;
        let handle = self.sessions.open(&facts.sensor_id, &self.shutdown);
        let session = Session {
            sensor_id: facts.sensor_id,
            store: Arc::clone(&self.store),
            ingest: self.ingest.clone(),
            responder: self.responder.clone(),
            tx,
        };
        let sessions = self.sessions.clone();
        let policy_changes = self.sessions.policy_changes();
        tokio::spawn(async move {
            let sensor_id = session.sensor_id.clone();
            session.run(inbound, handle.clone(), policy_changes).await;
            sessions.close(&sensor_id, &handle);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn unavailable(e: crate::store::StoreError) -> Status {
    Status::unavailable(format!("store unavailable: {e}"))
}

/// The endpoint's facts from its Hello; the identity comes from its certificate, and a Hello
/// that claims another one is refused.
fn endpoint_facts(sensor_id: &str, hello: &Hello) -> Result<EndpointFacts, Status> {
    if !hello.sensor_id.is_empty() && hello.sensor_id != sensor_id {
        return Err(Status::permission_denied(format!(
            "Hello names sensor {} but the certificate belongs to {sensor_id}",
            hello.sensor_id
        )));
    }
    let host = hello.host.clone().unwrap_or_default();
    Ok(EndpointFacts {
        sensor_id: sensor_id.to_owned(),
        hostname: host.hostname,
        os_name: host.os_name,
        kernel_release: host.kernel_release,
        agent_version: host.agent_version,
        capabilities: hello.capabilities.iter().map(capability).collect(),
    })
}

fn capability(c: &vigil_proto::Capability) -> CapabilityRecord {
    CapabilityRecord {
        name: c.name.clone(),
        source: c.source.clone(),
        live: c.live,
        detail: (!c.detail.is_empty()).then(|| c.detail.clone()),
    }
}

/// One agent's open session.
struct Session {
    sensor_id: String,
    store: Arc<dyn Store>,
    ingest: Ingestor,
    responder: Responder,
    tx: mpsc::Sender<Result<ServerMessage, Status>>,
}

impl Session {
    async fn run(
        self,
        mut inbound: Streaming<AgentMessage>,
        handle: SessionHandle,
        mut policy_changes: tokio::sync::watch::Receiver<u64>,
    ) {
        // First the endpoint's policy, then every command waiting for it (including those
        // delivered to an earlier session that never reported back: the agent runs each id
        // at most once).
        let mut policy_version = String::new();
        if let Err(status) = self.push_policy(&mut policy_version).await {
            tracing::warn!(sensor_id = %self.sensor_id, %status, "Cannot send the policy");
        }
        if let Err(status) = self.deliver_commands(true).await {
            tracing::warn!(sensor_id = %self.sensor_id, %status, "Cannot deliver commands");
        }
        let shutdown = handle.stop.clone();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break,
                () = handle.commands.notified() => {
                    if let Err(status) = self.deliver_commands(false).await {
                        tracing::warn!(sensor_id = %self.sensor_id, %status, "Cannot deliver commands");
                    }
                    continue;
                }
                changed = policy_changes.changed() => {
                    if changed.is_ok()
                        && let Err(status) = self.push_policy(&mut policy_version).await
                    {
                        tracing::warn!(sensor_id = %self.sensor_id, %status, "Cannot send the policy");
                    }
                    continue;
                }
                next = inbound.message() => next,
            };
            let msg = match next {
                Ok(Some(AgentMessage { msg: Some(msg) })) => msg,
                Ok(Some(AgentMessage { msg: None })) => continue,
                Ok(None) => break,
                Err(status) => {
                    tracing::info!(sensor_id = %self.sensor_id, %status, "Agent session ended");
                    return;
                }
            };
            let reply = match msg {
                agent_message::Msg::Events(batch) => self.on_batch(batch).await,
                agent_message::Msg::Heartbeat(hb) => self.on_heartbeat(&hb).await,
                agent_message::Msg::Priority(batch) => self.on_priority(batch).await,
                agent_message::Msg::Hello(_) => Err(Status::invalid_argument("Hello sent twice")),
            };
            match reply {
                Ok(None) => {}
                Ok(Some(msg)) => {
                    if self
                        .tx
                        .send(Ok(ServerMessage { msg: Some(msg) }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(status) => {
                    tracing::warn!(sensor_id = %self.sensor_id, %status, "Closing agent session");
                    let _ = self.tx.send(Err(status)).await;
                    return;
                }
            }
        }
        tracing::info!(sensor_id = %self.sensor_id, "Agent session closed");
    }

    /// Stores a batch, then acks it. An event that is not valid OCSF is dropped with a warning
    /// (it could never be stored); the rest of the batch still is.
    async fn on_batch(&self, batch: EventBatch) -> Result<Option<server_message::Msg>, Status> {
        let mut events = Vec::with_capacity(batch.events.len());
        let mut invalid = 0u32;
        for wire in &batch.events {
            // Validated as strictly as a full parse, stamped with this session's endpoint, and
            // kept as the bytes the agent sent; the wire's envelope copies are re-derived.
            match vigil_ocsf::RawEvent::from_json_stamped(&wire.ocsf_json, &self.sensor_id) {
                Ok(ev) => events.push(ev),
                Err(error) => {
                    invalid += 1;
                    tracing::warn!(sensor_id = %self.sensor_id, uid = %wire.uid, %error, "Dropping invalid event");
                }
            }
        }
        let out = self
            .ingest
            .submit(&self.sensor_id, events)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::debug!(sensor_id = %self.sensor_id, seq = batch.seq, stored = out.stored, duplicates = out.duplicates, invalid, "Batch stored");
        Ok(Some(server_message::Msg::Ack(Ack {
            seq: batch.seq,
            stored: out.stored,
            duplicates: out.duplicates,
        })))
    }

    /// Sends the endpoint's effective policy when it differs from what the session last sent.
    async fn push_policy(&self, sent: &mut String) -> Result<(), Status> {
        let policy = self
            .responder
            .effective_policy(&self.sensor_id)
            .await
            .map_err(unavailable)?;
        if policy.version == *sent {
            return Ok(());
        }
        let version = policy.version.clone();
        let rules = policy.rules.len();
        self.send(server_message::Msg::Policy(policy)).await?;
        tracing::info!(sensor_id = %self.sensor_id, %version, rules, "Policy sent");
        *sent = version;
        Ok(())
    }

    /// Hands the endpoint its pending commands, marking them delivered.
    async fn deliver_commands(&self, redeliver: bool) -> Result<(), Status> {
        let commands = self
            .store
            .take_pending_commands(&self.sensor_id, redeliver, vigil_ocsf::now_ms())
            .await
            .map_err(unavailable)?;
        for c in commands {
            tracing::info!(sensor_id = %self.sensor_id, command = %c.id, action = %c.action, "Command delivered");
            let wire = WireCommand {
                id: c.id,
                action: c.action,
                args_json: serde_json::to_vec(&c.args).unwrap_or_default(),
                created_at: c.created_at,
            };
            self.send(server_message::Msg::Command(wire)).await?;
        }
        Ok(())
    }

    async fn send(&self, msg: server_message::Msg) -> Result<(), Status> {
        self.tx
            .send(Ok(ServerMessage { msg: Some(msg) }))
            .await
            .map_err(|_| Status::cancelled("the session ended"))
    }

    /// Stores the agent's own findings and its command results, then acks the batch.
    async fn on_priority(
        &self,
        batch: PriorityBatch,
    ) -> Result<Option<server_message::Msg>, Status> {
        let mut findings = Vec::with_capacity(batch.findings.len());
        for wire in &batch.findings {
            match serde_json::from_slice::<vigil_ocsf::DetectionFinding>(&wire.ocsf_json) {
                Ok(mut f) => {
                    if let Some(device) = f.device.as_mut() {
                        device.uid.clone_from(&self.sensor_id);
                    }
                    findings.push(f);
                }
                Err(error) => {
                    tracing::warn!(sensor_id = %self.sensor_id, uid = %wire.uid, %error, "Dropping an invalid finding");
                }
            }
        }
        let stored = self
            .store
            .insert_findings(&self.sensor_id, &findings)
            .await
            .map_err(unavailable)?;
        if stored > 0 {
            tracing::info!(sensor_id = %self.sensor_id, stored, "Edge findings stored");
        }
        for r in &batch.results {
            self.on_result(r).await?;
        }
        Ok(Some(server_message::Msg::Ack(Ack {
            seq: batch.seq,
            stored,
            duplicates: u32::try_from(findings.len())
                .unwrap_or(u32::MAX)
                .saturating_sub(stored),
        })))
    }

    /// Completes a command with its result; a result that came in parts completes it once its
    /// last part is held (each part is durable before its batch is acked).
    async fn on_result(&self, r: &CommandResult) -> Result<(), Status> {
        let now = vigil_ocsf::now_ms();
        let (succeeded, bytes) = if r.parts > 1 {
            if r.parts > vigil_proto::MAX_RESULT_PARTS || r.part >= r.parts {
                tracing::warn!(sensor_id = %self.sensor_id, command = %r.id, part = r.part, parts = r.parts, "Refusing a result in too many parts");
                let error = format!(
                    "the result came in {} parts; the server takes at most {} of {} bytes",
                    r.parts,
                    vigil_proto::MAX_RESULT_PARTS,
                    vigil_proto::RESULT_PART_BYTES
                );
                (
                    false,
                    serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default(),
                )
            } else {
                let joined = self
                    .store
                    .put_result_part(
                        &self.sensor_id,
                        &r.id,
                        (r.part, r.parts),
                        &r.result_json,
                        now,
                    )
                    .await
                    .map_err(unavailable)?;
                let Some(joined) = joined else {
                    tracing::debug!(sensor_id = %self.sensor_id, command = %r.id, part = r.part, parts = r.parts, "Result part held");
                    return Ok(());
                };
                (r.succeeded, joined)
            }
        } else {
            (r.succeeded, r.result_json.clone())
        };
        let result = serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|_| serde_json::json!({ "error": "the agent sent no valid JSON" }));
        let outcome = self
            .store
            .complete_command(&self.sensor_id, &r.id, succeeded, &result, now)
            .await
            .map_err(unavailable)?;
        tracing::info!(sensor_id = %self.sensor_id, command = %r.id, succeeded, bytes = bytes.len(), parts = r.parts.max(1), ?outcome, "Command result");
        Ok(())
    }

    async fn on_heartbeat(&self, hb: &Heartbeat) -> Result<Option<server_message::Msg>, Status> {
        let record = heartbeat_record(hb);
        self.store
            .record_heartbeat(&self.sensor_id, &record, "grpc", vigil_ocsf::now_ms())
            .await
            .map_err(unavailable)?;
        Ok(None)
    }
}

/// The stored form of a gRPC heartbeat.
fn heartbeat_record(hb: &Heartbeat) -> HeartbeatRecord {
    let host = hb.host.clone().unwrap_or_default();
    HeartbeatRecord {
        time: hb.time,
        agent_version: host.agent_version,
        os_name: host.os_name,
        kernel_release: host.kernel_release,
        uptime_s: hb.uptime_s,
        capabilities: hb.capabilities.iter().map(capability).collect(),
        buffered: hb.buffered,
        dropped: hb.dropped,
        evicted: hb.evicted,
        cpu_percent: hb.cpu_percent,
        rss_bytes: hb.rss_bytes,
        isolation: hb.isolation.clone(),
    }
}
