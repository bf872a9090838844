//! Which detection worker evaluates which partition, agreed through a JetStream key-value
//! bucket whose entries expire after the lease time.
//!
//! Every worker renews `w.<instance>` (it is alive) and `p.<partition>` for each partition it
//! owns, four times per lease time, with compare-and-set on the revision so a lease another
//! worker took over is noticed, never stolen back. A worker claims free partitions (create
//! fails when the key exists) up to its fair share — the partition count divided by the live
//! workers, rounded up — and gives back what exceeds it when workers join. A worker that dies
//! stops renewing: its leases expire and the others claim them; the messages it held
//! unacknowledged are redelivered to the new owner. A worker that stops cleanly deletes its
//! keys, so the hand-over is immediate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Claims and renews partitions for one worker; publishes the set it owns on `owned`.
pub async fn run(
    kv: kv::Store,
    instance: String,
    partitions: u16,
    ttl: Duration,
    owned: watch::Sender<BTreeSet<u16>>,
    shutdown: CancellationToken,
) {
    let mut leases = Leases {
        kv,
        instance,
        partitions,
        held: BTreeMap::new(),
    };
    let every = ttl / 4;
    loop {
        if let Err(error) = leases.round().await {
            tracing::warn!(%error, "Detection leases: a round failed; retrying");
        }
        let set: BTreeSet<u16> = leases.held.keys().copied().collect();
        owned.send_if_modified(|o| {
            if *o == set {
                false
            } else {
                *o = set;
                true
            }
        });
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    owned.send_replace(BTreeSet::new());
    leases.release_all().await;
}

struct Leases {
    kv: kv::Store,
    instance: String,
    partitions: u16,
    /// Owned partitions and the revision of their lease.
    held: BTreeMap<u16, u64>,
}

impl Leases {
    fn worker_key(&self) -> String {
        format!("w.{}", self.instance)
    }

    async fn round(&mut self) -> Result<(), String> {
        self.kv
            .put(self.worker_key(), self.value())
            .await
            .map_err(|e| e.to_string())?;
        // Renew, and notice the leases that lapsed and went to another worker.
        let held: Vec<(u16, u64)> = self.held.iter().map(|(p, r)| (*p, *r)).collect();
        for (p, rev) in held {
            match self.kv.update(part_key(p), self.value(), rev).await {
                Ok(rev) => {
                    self.held.insert(p, rev);
                }
                Err(_) => {
                    // Lapsed (this worker stalled past the lease time): take it again if
                    // nobody else did, otherwise let it go.
                    match self.kv.create(part_key(p), self.value()).await {
                        Ok(rev) => {
                            self.held.insert(p, rev);
                        }
                        Err(_) => {
                            tracing::warn!(partition = p, "Detection lease lost to another worker");
                            self.held.remove(&p);
                        }
                    }
                }
            }
        }
        let workers = self.live_workers().await?.max(1);
        let share = usize::from(self.partitions).div_ceil(workers);
        // Give back the surplus after other workers joined, highest partitions first.
        let mut given = Vec::new();
        while self.held.len() > share {
            let Some((p, _)) = self.held.pop_last() else {
                break;
            };
            let _ = self.kv.delete(part_key(p)).await;
            given.push(p);
        }
        if !given.is_empty() {
            tracing::info!(partitions = ?given, workers, "Detection partitions handed over");
        }
        let mut claimed = Vec::new();
        if self.held.len() < share {
            // Start at a place of this worker's own so workers starting together do not all
            // race for partition 0.
            let start = crate::bus::nats::partition_of(&self.instance, self.partitions);
            for i in 0..self.partitions {
                if self.held.len() >= share {
                    break;
                }
                let p = (start + i) % self.partitions;
                if self.held.contains_key(&p) {
                    continue;
                }
                if let Ok(rev) = self.kv.create(part_key(p), self.value()).await {
                    claimed.push(p);
                    self.held.insert(p, rev);
                }
            }
        }
        if !claimed.is_empty() {
            tracing::info!(partitions = ?claimed, workers, "Detection partitions claimed");
        }
        Ok(())
    }

    fn value(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.instance.clone())
    }

    async fn live_workers(&self) -> Result<usize, String> {
        let mut keys = self.kv.keys().await.map_err(|e| e.to_string())?;
        let mut n = 0;
        while let Some(k) = keys.next().await {
            if k.map_err(|e| e.to_string())?.starts_with("w.") {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release_all(&mut self) {
        for p in std::mem::take(&mut self.held).into_keys() {
            let _ = self.kv.delete(part_key(p)).await;
        }
        let _ = self.kv.delete(self.worker_key()).await;
    }
}

fn part_key(p: u16) -> String {
    format!("p.{p}")
}
