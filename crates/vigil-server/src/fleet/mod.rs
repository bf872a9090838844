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
use vigil_proto::fleet::{Ack, Heartbeat, Hello, Welcome};
use vigil_proto::{AgentMessage, EventBatch, ServerMessage, agent_message, server_message};

use crate::bus::Bus;
use crate::store::{CapabilityRecord, EndpointFacts, Store};

/// Replies queued per session before the server stops reading that agent (backpressure).
const OUTBOUND_DEPTH: usize = 64;

/// The gRPC fleet service.
#[derive(Clone)]
pub struct FleetService {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    shutdown: CancellationToken,
}

impl FleetService {
    /// A service over the given store and bus; `shutdown` ends every open session.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, shutdown: CancellationToken) -> Self {
        Self {
            store,
            bus,
            shutdown,
        }
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

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
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
        let facts = endpoint_facts(&hello)?;
        self.store
            .upsert_endpoint(&facts, vigil_ocsf::now_ms())
            .await
            .map_err(|e| Status::unavailable(format!("store unavailable: {e}")))?;
        tracing::info!(sensor_id = %facts.sensor_id, hostname = %facts.hostname, "Agent session opened");

        let (tx, rx) = mpsc::channel(OUTBOUND_DEPTH);
        let welcome = server_message::Msg::Welcome(Welcome {
            sensor_id: facts.sensor_id.clone(),
        });
        // The receiver is alive: it is returned below.
        let _ = tx.send(Ok(ServerMessage { msg: Some(welcome) })).await;
        let session = Session {
            sensor_id: facts.sensor_id,
            store: Arc::clone(&self.store),
            bus: Arc::clone(&self.bus),
            tx,
        };
        tokio::spawn(session.run(inbound, self.shutdown.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn endpoint_facts(hello: &Hello) -> Result<EndpointFacts, Status> {
    let sensor_id = hello.sensor_id.trim();
    if sensor_id.is_empty() || sensor_id.len() > 128 {
        return Err(Status::invalid_argument(
            "Hello.sensor_id must be 1 to 128 characters",
        ));
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
    bus: Arc<dyn Bus>,
    tx: mpsc::Sender<Result<ServerMessage, Status>>,
}

impl Session {
    async fn run(self, mut inbound: Streaming<AgentMessage>, shutdown: CancellationToken) {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break,
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
            match vigil_ocsf::Event::try_from(wire) {
                Ok(ev) => events.push(ev),
                Err(error) => {
                    invalid += 1;
                    tracing::warn!(sensor_id = %self.sensor_id, uid = %wire.uid, %error, "Dropping invalid event");
                }
            }
        }
        let out = self
            .store
            .insert_events(&self.sensor_id, &events)
            .await
            .map_err(|e| Status::unavailable(format!("store unavailable: {e}")))?;
        if out.stored > 0 {
            self.bus.events_stored();
        }
        tracing::debug!(sensor_id = %self.sensor_id, seq = batch.seq, stored = out.stored, duplicates = out.duplicates, invalid, "Batch stored");
        Ok(Some(server_message::Msg::Ack(Ack {
            seq: batch.seq,
            stored: out.stored,
            duplicates: out.duplicates,
        })))
    }

    async fn on_heartbeat(&self, hb: &Heartbeat) -> Result<Option<server_message::Msg>, Status> {
        self.store
            .touch_endpoint(
                &self.sensor_id,
                vigil_ocsf::now_ms(),
                hb.buffered,
                hb.dropped,
            )
            .await
            .map_err(|e| Status::unavailable(format!("store unavailable: {e}")))?;
        Ok(None)
    }
}
