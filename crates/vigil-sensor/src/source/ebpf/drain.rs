//! The eBPF capture thread: drains the process and TCP ring buffers, merges their records in
//! event order, and hands them on as observations.
//!
//! Merging matters for enrichment: a connect right after an exec must be attributed to the new
//! image, and an exit must be seen after everything its process did, although the two kinds
//! travel in different ring buffers.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use aya::Ebpf;
use aya::maps::{MapData, RingBuf};

use super::observe::observe;
use super::record::{Record, parse_record};
use crate::clock::Clocks;
use crate::source::{Emitter, Flow, Wake, wait_any};

/// Records taken from one ring buffer per round, so a flood in one cannot starve the other and
/// a round's batch stays bounded (at most ~18 MiB of exec records, usually far less).
const MAX_RECORDS_PER_ROUND: usize = 4096;

/// The ring buffers to drain; either may be absent when its object did not load.
pub(crate) struct Rings {
    pub(crate) process: Option<RingBuf<MapData>>,
    pub(crate) tcp: Option<RingBuf<MapData>>,
}

/// Runs until stop is raised or the sink closes. `objects` are held so the programs stay
/// attached exactly as long as someone drains them.
pub(crate) fn run(objects: Vec<Ebpf>, mut rings: Rings, mut emitter: Emitter) {
    let _attached = objects;
    let hz = emitter.hz();
    let mut batch = Vec::new();
    loop {
        let fds = [
            rings.process.as_ref().map(|r| r.as_fd()),
            rings.tcp.as_ref().map(|r| r.as_fd()),
        ];
        match wait_any(&fds, emitter.stop(), -1) {
            Ok(Wake::Ready | Wake::Timeout) => {}
            Ok(Wake::Stop) => return,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Polling the eBPF ring buffers failed; capture stops");
                return;
            }
        }
        let clocks = Clocks::now();
        for ring in [rings.process.as_mut(), rings.tcp.as_mut()]
            .into_iter()
            .flatten()
        {
            take(ring, &mut batch, &emitter);
        }
        // Stable: records of one ring buffer with equal times keep their order.
        batch.sort_by_key(Record::ktime_ns);
        for record in batch.drain(..) {
            let Some(obs) = observe(&record, clocks, hz) else {
                continue;
            };
            if emitter.emit(&obs, clocks) == Flow::Stop {
                return;
            }
        }
        if emitter.stop().is_raised() {
            return;
        }
    }
}

/// Copies up to [`MAX_RECORDS_PER_ROUND`] records out of `ring` into `batch`.
fn take(ring: &mut RingBuf<MapData>, batch: &mut Vec<Record>, emitter: &Emitter) {
    for _ in 0..MAX_RECORDS_PER_ROUND {
        let Some(item) = ring.next() else {
            return;
        };
        let parsed = parse_record(&item);
        drop(item);
        match parsed {
            Ok(record) => batch.push(record),
            Err(error) => {
                emitter.stats().dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "Skipped a malformed eBPF record");
            }
        }
    }
}
