//! The ingest role's writer: group commit.
//!
//! Sessions (gRPC and HTTP) hand their batches to one writer task, which folds everything
//! waiting into a single transaction — one fsync for many batches — then answers each batch
//! with its outcome once the bus has announced (or, at scale, carried) the group. SQLite has one writer at a time
//! anyway; this turns contention between sessions into batching.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use vigil_ocsf::RawEvent;

use crate::bus::Bus;
use crate::store::{InsertOutcome, Store, StoreError};

/// Batches waiting for the writer before senders feel backpressure.
const QUEUE: usize = 1024;
/// Most events folded into one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;

type Reply = oneshot::Sender<Result<InsertOutcome, String>>;

/// Hands batches to the group-commit writer.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<(String, Vec<RawEvent>, Reply)>,
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store failed the transaction holding the batch.
    #[error("store unavailable: {0}")]
    Store(String),
    /// The writer is gone (server shutting down).
    #[error("the server is shutting down")]
    Closed,
}

impl Ingestor {
    /// Starts the writer task over `store`, announcing stored events on `bus`.
    pub fn start(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(rx, store, bus));
        Self { tx }
    }

    /// Stores a sensor's batch durably; returns once it is committed.
    pub async fn submit(
        &self,
        sensor_id: &str,
        events: Vec<RawEvent>,
    ) -> Result<InsertOutcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((sensor_id.to_owned(), events, reply))
            .await
            .map_err(|_| IngestError::Closed)?;
        answer
            .await
            .map_err(|_| IngestError::Closed)?
            .map_err(IngestError::Store)
    }
}

/// Groups handed from the store writer to the publisher before the writer waits.
const PUBLISHING: usize = 2;

/// A committed group on its way to the bus: what to publish, and whom to answer after.
type Committed = (crate::bus::Prepared, Vec<Reply>, Vec<InsertOutcome>);

async fn writer(
    mut rx: mpsc::Receiver<(String, Vec<RawEvent>, Reply)>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
) {
    // The bus gets groups in the order they were committed, from one task, while the writer
    // commits the next group: at scale, JetStream's acknowledgements of one group overlap the
    // store's commit of the next.
    let (committed, publishing) = mpsc::channel::<Committed>(PUBLISHING);
    let publisher = tokio::spawn(publisher(publishing, Arc::clone(&bus)));
    while let Some(first) = rx.recv().await {
        let mut events = first.1.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(next) => {
                    events += next.1.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|(sensor, evs, reply)| ((sensor, evs), reply))
            .unzip();
        // Encoded for the bus before the store takes the batches. A bus that carries the
        // events (JetStream) gets every event of the group, even those the store already
        // held: a batch sent again after a lost acknowledgement may never have reached the bus
        // the first time. Detection drops what it has already scored.
        let prepared = bus.prepare(&batches);
        match store.insert_event_batches(batches).await {
            Ok(outcomes) => {
                if let Err(mpsc::error::SendError((_, replies, _))) =
                    committed.send((prepared, replies, outcomes)).await
                {
                    answer_all(replies, "the server is shutting down");
                }
            }
            Err(error) => {
                tracing::error!(%error, batches = replies.len(), "Group commit failed; the batches are not acknowledged");
                answer_all(replies, &StoreError::to_string(&error));
            }
        }
    }
    drop(committed);
    let _ = publisher.await;
}

/// Publishes committed groups in order, then answers their batches.
async fn publisher(mut groups: mpsc::Receiver<Committed>, bus: Arc<dyn Bus>) {
    while let Some((prepared, replies, outcomes)) = groups.recv().await {
        match bus.publish(prepared).await {
            Ok(()) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, batches = replies.len(), "The bus did not take the group; the batches are not acknowledged");
                answer_all(replies, &error.to_string());
            }
        }
    }
}

fn answer_all(replies: Vec<Reply>, message: &str) {
    for reply in replies {
        let _ = reply.send(Err(message.to_owned()));
    }
}
