//! The fleet link: one gRPC session to the server that streams the buffer up in batches and
//! deletes what the server acknowledged.
//!
//! Batches carry a per-session sequence number; up to `window` batches are in flight. On a new
//! session everything still in the buffer is sent again (the server de-duplicates by event id),
//! so a lost connection can delay an event but never lose one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{Command, Heartbeat, Hello, PolicyUpdate, PriorityBatch};
use vigil_proto::{AgentMessage, EventBatch, ServerMessage, agent_message, server_message};

use crate::buffer::{Buffer, BufferError, PriorityItem};
use crate::host::SelfUsage;
use crate::identity::{self, AgentIdentity, IdentityError};

mod backoff;

pub use backoff::Backoff;

/// How the link behaves.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Fleet server URL, e.g. `http://127.0.0.1:8443`.
    pub server: String,
    /// Events per batch.
    pub batch_max: u32,
    /// Batches in flight before waiting for acks.
    pub window: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// How long a shutdown waits for the buffer to drain.
    pub flush_timeout: Duration,
    /// Where the identity is kept.
    pub data_dir: std::path::PathBuf,
    /// The fleet CA to trust when enrolling (later calls use the CA received at enrollment).
    pub ca_pem: Option<String>,
    /// The enrollment secret.
    pub enroll_secret: Option<String>,
}

/// Counters the link keeps.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Sessions opened.
    pub sessions: AtomicU64,
    /// Batches acknowledged.
    pub batches_acked: AtomicU64,
    /// Events acknowledged.
    pub events_acked: AtomicU64,
}

/// Reports events lost before they reached the buffer (kernel drops, intake failures).
pub type DroppedFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Reports the isolation the agent enforces (`none`, `isolated`) for heartbeats.
pub type IsolationFn = Arc<dyn Fn() -> String + Send + Sync>;

/// What the server sends the agent besides acks, handed to the agent's executor.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A response command.
    Command(Command),
    /// The endpoint's effective policy.
    Policy(PolicyUpdate),
}

/// Which table a batch in flight came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Events,
    Priority,
}

/// A batch sent and not yet acked.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    lane: Lane,
    first: i64,
    last: i64,
    n: u64,
}

/// The fleet link.
pub struct Link {
    cfg: LinkConfig,
    identity: Option<AgentIdentity>,
    usage: SelfUsage,
    buffer: Arc<Buffer>,
    hello: Hello,
    wake: Arc<Notify>,
    dropped: DroppedFn,
    isolation: IsolationFn,
    inbox: mpsc::Sender<Inbound>,
    stats: Arc<LinkStats>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("cannot reach the fleet server: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the fleet server refused the session: {0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Buffer(#[from] BufferError),
    #[error("the session closed: {0}")]
    Closed(&'static str),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// How a session ended.
enum Ended {
    /// Shutdown asked and the buffer is drained (or the flush timed out).
    Flushed,
    /// The session was lost after it was established.
    Lost(SessionError),
}

impl Link {
    /// A link that streams `buffer` to the server; `wake` is notified when events are added.
    /// Commands and policies from the server go to `inbox`.
    pub fn new(
        cfg: LinkConfig,
        buffer: Arc<Buffer>,
        hello: Hello,
        wake: Arc<Notify>,
        dropped: DroppedFn,
        isolation: IsolationFn,
        inbox: mpsc::Sender<Inbound>,
    ) -> Self {
        Self {
            cfg,
            identity: None,
            usage: SelfUsage::new(),
            buffer,
            hello,
            wake,
            dropped,
            isolation,
            inbox,
            stats: Arc::default(),
        }
    }

    /// The link's counters.
    pub fn stats(&self) -> Arc<LinkStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` is cancelled and the buffer is flushed (or the flush times out, or
    /// the server is unreachable at that moment: the events then stay buffered on disk).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        loop {
            if shutdown.is_cancelled() && self.buffer.is_empty() {
                return;
            }
            // The flush deadline inside the session bounds a healthy drain; this bounds a
            // session stuck on a write the server never reads.
            let grace = self.cfg.flush_timeout + Duration::from_secs(1);
            let hard_stop = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            let ended = tokio::select! {
                ended = self.session(&shutdown) => ended,
                () = hard_stop => {
                    tracing::warn!("Fleet session did not drain in time; the rest stays buffered");
                    return;
                }
            };
            match ended {
                Ok(Ended::Flushed) => return,
                Ok(Ended::Lost(error)) => {
                    backoff.reset();
                    tracing::warn!(%error, server = %self.cfg.server, "Fleet session lost; reconnecting");
                }
                Err(error) => {
                    tracing::debug!(%error, server = %self.cfg.server, "Fleet connection attempt failed");
                }
            }
            if shutdown.is_cancelled() {
                tracing::warn!(
                    buffered = self.buffer.len(),
                    "Stopping with events still buffered; they are sent on the next start"
                );
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// The identity to connect with: loaded, enrolled, renewed or re-enrolled as needed.
    async fn identity(&mut self) -> Result<AgentIdentity, SessionError> {
        let now = vigil_ocsf::now_ms();
        if self.identity.is_none() {
            self.identity = AgentIdentity::load(&self.cfg.data_dir)?;
        }
        match self.identity.clone() {
            Some(id) if id.expired(now) => {
                tracing::warn!(sensor_id = %id.sensor_id, "Client certificate expired; enrolling again");
                self.identity = None;
                self.enroll().await
            }
            Some(id) if id.needs_renewal(now) => {
                match id.renew(&self.cfg.server, &self.cfg.data_dir).await {
                    Ok(renewed) => {
                        tracing::info!(sensor_id = %renewed.sensor_id, "Client certificate renewed");
                        self.identity = Some(renewed.clone());
                        Ok(renewed)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "Certificate renewal failed; using the current one");
                        Ok(id)
                    }
                }
            }
            Some(id) => Ok(id),
            None => self.enroll().await,
        }
    }

    async fn enroll(&mut self) -> Result<AgentIdentity, SessionError> {
        let ca = self
            .cfg
            .ca_pem
            .as_deref()
            .ok_or(IdentityError::CannotEnroll(
                "no fleet CA certificate was given (--ca-cert)",
            ))?;
        let secret = self
            .cfg
            .enroll_secret
            .as_deref()
            .ok_or(IdentityError::CannotEnroll(
                "no enrollment secret was given (--enroll-secret / VIGIL_ENROLL_SECRET)",
            ))?;
        let host = self.hello.host.clone().unwrap_or_default();
        let proposed = self.hello.sensor_id.clone();
        let id = identity::enroll(
            &self.cfg.server,
            &self.cfg.data_dir,
            ca,
            secret,
            host,
            &proposed,
        )
        .await?;
        tracing::info!(sensor_id = %id.sensor_id, "Enrolled with the fleet server");
        self.identity = Some(id.clone());
        Ok(id)
    }

    /// Opens one session and runs it. `Err` means it was never established.
    async fn session(&mut self, shutdown: &CancellationToken) -> Result<Ended, SessionError> {
        let id = self.identity().await?;
        let channel = identity::endpoint(&self.cfg.server, id.client_tls())?
            .connect()
            .await?;
        let mut client = FleetClient::new(channel)
            .max_decoding_message_size(vigil_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(vigil_proto::MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel::<AgentMessage>(self.cfg.window + 4);
        let hello = agent_message::Msg::Hello(Hello {
            sensor_id: id.sensor_id.clone(),
            ..self.hello.clone()
        });
        tx.send(AgentMessage { msg: Some(hello) })
            .await
            .map_err(|_| SessionError::Closed("before hello"))?;
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        match inbound.message().await? {
            Some(ServerMessage {
                msg: Some(server_message::Msg::Welcome(_)),
            }) => {}
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
        }
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(server = %self.cfg.server, buffered = self.buffer.len(), "Fleet session established");
        match self.stream(&tx, &mut inbound, shutdown).await {
            Ok(()) => Ok(Ended::Flushed),
            Err(e) => Ok(Ended::Lost(e)),
        }
    }

    /// Streams the buffer over an established session until flushed after shutdown, or lost.
    async fn stream(
        &mut self,
        tx: &mpsc::Sender<AgentMessage>,
        inbound: &mut tonic::Streaming<ServerMessage>,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut sent_through = 0i64;
        let mut priority_through = 0i64;
        let mut next_seq = 1u64;
        let mut heartbeat = tokio::time::interval(self.cfg.heartbeat);
        let mut deadline: Option<Instant> = None;
        loop {
            while inflight.len() < self.cfg.window {
                // The priority lane first: findings and command results overtake telemetry.
                let items = self
                    .buffer
                    .read_priority_after(priority_through, self.cfg.batch_max)
                    .await?;
                if let (Some(&(first, _)), Some(&(last, _))) = (items.first(), items.last()) {
                    let n = items.len() as u64;
                    let mut batch = PriorityBatch {
                        seq: next_seq,
                        ..PriorityBatch::default()
                    };
                    for (_, item) in items {
                        match item {
                            PriorityItem::Finding(f) => batch.findings.push(f),
                            PriorityItem::Result(r) => batch.results.push(r),
                        }
                    }
                    send(tx, agent_message::Msg::Priority(batch)).await?;
                    inflight.push_back(InFlight {
                        seq: next_seq,
                        lane: Lane::Priority,
                        first,
                        last,
                        n,
                    });
                    priority_through = last;
                    next_seq += 1;
                    continue;
                }
                let rows = self
                    .buffer
                    .read_after(sent_through, self.cfg.batch_max)
                    .await?;
                let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                    break;
                };
                let (first, last, n) = (first.seq, last.seq, rows.len() as u64);
                let batch = EventBatch {
                    seq: next_seq,
                    events: rows.into_iter().map(|b| b.event).collect(),
                };
                send(tx, agent_message::Msg::Events(batch)).await?;
                inflight.push_back(InFlight {
                    seq: next_seq,
                    lane: Lane::Events,
                    first,
                    last,
                    n,
                });
                sent_through = last;
                next_seq += 1;
            }
            if deadline.is_some() && inflight.is_empty() && self.buffer.is_empty() {
                tracing::info!("Agent buffer flushed");
                return Ok(());
            }
            let window_open = inflight.len() < self.cfg.window;
            tokio::select! {
                msg = inbound.message() => {
                    let ack = match msg? {
                        Some(ServerMessage { msg: Some(server_message::Msg::Ack(ack)) }) => ack,
                        Some(ServerMessage { msg: Some(server_message::Msg::Command(c)) }) => {
                            self.hand_over(Inbound::Command(c)).await?;
                            continue;
                        }
                        Some(ServerMessage { msg: Some(server_message::Msg::Policy(p)) }) => {
                            self.hand_over(Inbound::Policy(p)).await?;
                            continue;
                        }
                        Some(_) => continue,
                        None => return Err(SessionError::Closed("by the server")),
                    };
                    let Some(done) = inflight.pop_front() else {
                        return Err(SessionError::Protocol(format!("ack {} with nothing in flight", ack.seq)));
                    };
                    if done.seq != ack.seq {
                        return Err(SessionError::Protocol(format!("ack {} while {} was oldest in flight", ack.seq, done.seq)));
                    }
                    match done.lane {
                        Lane::Events => {
                            self.buffer.ack(done.first, done.last).await?;
                            self.stats.events_acked.fetch_add(done.n, Ordering::Relaxed);
                        }
                        Lane::Priority => self.buffer.ack_priority(done.first, done.last).await?,
                    }
                    self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                }
                () = self.wake.notified(), if window_open => {}
                _ = heartbeat.tick() => {
                    let (cpu_percent, rss_bytes) = self.usage.sample();
                    // Reading the isolation back runs `nft`: off the async threads.
                    let read = Arc::clone(&self.isolation);
                    let isolation = tokio::task::spawn_blocking(move || read())
                        .await
                        .unwrap_or_else(|_| "unknown".into());
                    let hb = Heartbeat {
                        time: vigil_ocsf::now_ms(),
                        buffered: self.buffer.len(),
                        dropped: (self.dropped)(),
                        evicted: self.buffer.evicted(),
                        capabilities: self.hello.capabilities.clone(),
                        host: self.hello.host.clone(),
                        uptime_s: self.usage.uptime_s(),
                        cpu_percent,
                        rss_bytes,
                        isolation,
                    };
                    send(tx, agent_message::Msg::Heartbeat(hb)).await?;
                }
                () = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + self.cfg.flush_timeout);
                }
                () = sleep_until(deadline) => {
                    tracing::warn!(buffered = self.buffer.len(), "Flush timed out; the rest stays buffered");
                    return Ok(());
                }
            }
        }
    }
}

impl Link {
    /// Passes a command or policy to the executor; waits when it is busy (backpressure).
    async fn hand_over(&self, item: Inbound) -> Result<(), SessionError> {
        self.inbox
            .send(item)
            .await
            .map_err(|_| SessionError::Closed("the agent's executor stopped"))
    }
}

async fn send(
    tx: &mpsc::Sender<AgentMessage>,
    msg: agent_message::Msg,
) -> Result<(), SessionError> {
    tx.send(AgentMessage { msg: Some(msg) })
        .await
        .map_err(|_| SessionError::Closed("the outbound stream ended"))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
