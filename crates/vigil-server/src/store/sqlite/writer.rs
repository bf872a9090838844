//! The event writer: one dedicated connection on its own thread, inserting group commits with
//! prepared multi-row statements straight through the SQLite C API, and writing the hunting
//! index in the pauses between them.
//!
//! Going through sqlx's query layer cost more than SQLite itself: every group rebuilt its SQL,
//! boxed every argument and crossed to the connection's worker thread per statement. Here the
//! connection is opened (and configured) by sqlx like every other, then its handle is locked
//! out of sqlx for the life of the thread; the statements are prepared once and the event JSON
//! is bound as the bytes it arrived in.
//!
//! **One writer for the log and its index, events first.** SQLite has one write lock. When the
//! hunting indexer wrote its pages on a connection of its own, each page held that lock for
//! 80-125 ms under a busy fleet, and the event writer, waiting in SQLite's busy handler (sleeps
//! of up to 100 ms, retried), lost races to it: acknowledgements stalled for up to 1.5 s. Now
//! the indexer hands its pages to this thread, which takes a waiting group of events before a
//! waiting page, so a group waits at most for the one page being written. The thread's busy
//! handler ([`super::ffi`]) looks again every fraction of a millisecond, so the store's other
//! writers (detection's commits, operators' changes) delay a group by their own transaction
//! only.
//!
//! Durability is unchanged: `synchronous = FULL`, one transaction (one WAL fsync) per group,
//! and the caller hears back only after `COMMIT` returned.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::sync::{Condvar, Mutex};

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::oneshot;
use vigil_ocsf::RawEvent;

use super::ffi::{Db, MultiRowInsert};
use super::hunt_writer::{HuntPage, HuntStatements};
use crate::store::{InsertOutcome, StoreError};

/// Page cache of the writer connection (64 MiB): the `uid` index of a large log stays hot.
const CACHE_PRAGMA: &CStr = c"PRAGMA cache_size = -65536";

type Batches = Vec<(String, Vec<RawEvent>)>;
type Reply = oneshot::Sender<Result<Vec<InsertOutcome>, StoreError>>;
type HuntReply = oneshot::Sender<Result<(), StoreError>>;

/// The writer thread's work: groups of events ahead of pages of the hunting index.
#[derive(Default)]
struct Queue {
    groups: VecDeque<(Batches, Reply)>,
    pages: VecDeque<(HuntPage, HuntReply)>,
    closed: bool,
}

enum Job {
    Group(Batches, Reply),
    Page(HuntPage, HuntReply),
}

/// The queue and the condition the thread sleeps on while it is empty.
#[derive(Default)]
struct Jobs {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Jobs {
    /// Adds a job unless the writer is closed (then hands it back).
    fn push(&self, job: Job) -> Result<(), Job> {
        let Ok(mut q) = self.queue.lock() else {
            return Err(job);
        };
        if q.closed {
            return Err(job);
        }
        match job {
            Job::Group(b, r) => q.groups.push_back((b, r)),
            Job::Page(p, r) => q.pages.push_back((p, r)),
        }
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, groups first; `None` once closed and drained.
    fn next(&self) -> Option<Job> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if let Some((b, r)) = q.groups.pop_front() {
                return Some(Job::Group(b, r));
            }
            if let Some((p, r)) = q.pages.pop_front() {
                return Some(Job::Page(p, r));
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.queue.lock().map_or(true, |q| q.closed)
    }
}

/// Hands group commits and index pages to the writer thread.
pub(super) struct EventWriter {
    jobs: std::sync::Arc<Jobs>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventWriter")
    }
}

impl EventWriter {
    /// Opens the writer's connection with `opts` and starts its thread.
    pub(super) async fn start(opts: &SqliteConnectOptions) -> Result<Self, StoreError> {
        let conn = opts.connect().await?;
        let jobs = std::sync::Arc::new(Jobs::default());
        let (ready_tx, ready) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let theirs = std::sync::Arc::clone(&jobs);
        std::thread::Builder::new()
            .name("vigil-event-writer".into())
            .spawn(move || {
                run(conn, &theirs, ready_tx);
                // Whatever is left (the thread failed at start) is answered "closed".
                theirs.close();
                while theirs.next().is_some() {}
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Engine(format!("cannot start the event writer: {e}")))?;
        ready
            .await
            .map_err(|_| StoreError::Engine("the event writer died at start".into()))??;
        Ok(Self {
            jobs,
            done: Mutex::new(Some(done)),
        })
    }

    /// Inserts every batch in one transaction; returns once it is committed.
    pub(super) async fn insert(&self, batches: Batches) -> Result<Vec<InsertOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .push(Job::Group(batches, reply))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Writes a page of the hunting index and its cursor in one transaction, after every group
    /// of events waiting; returns once it is committed.
    pub(super) async fn index_hunt(&self, page: HuntPage) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .push(Job::Page(page, reply))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Whether [`EventWriter::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.jobs.is_closed()
    }

    /// Stops the thread after the work in hand and closes its connection.
    pub(super) async fn close(&self) {
        self.jobs.close();
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // The thread ends once it has done what was queued.
        self.jobs.close();
    }
}

fn closed() -> StoreError {
    StoreError::Engine("the event writer is closed".into())
}

fn run(mut conn: SqliteConnection, jobs: &Jobs, ready: oneshot::Sender<Result<(), StoreError>>) {
    let mut locked = match futures::executor::block_on(conn.lock_handle()) {
        Ok(locked) => locked,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let db = Db(locked.as_raw_handle());
    let prepared = db
        .wait_in_short_steps()
        .and_then(|()| Ok((Statements::prepare(&db)?, HuntStatements::prepare(&db)?)));
    let (statements, hunt) = match prepared {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Some(job) = jobs.next() {
        match job {
            Job::Group(batches, reply) => {
                let _ = reply.send(statements.insert_group(&db, &batches));
            }
            Job::Page(page, reply) => {
                let _ = reply.send(hunt.write(&db, &page));
            }
        }
    }
    drop(statements);
    drop(hunt);
    drop(locked);
    let _ = futures::executor::block_on(sqlx::Connection::close(conn));
}

/// The event insert, prepared once per chunk size.
struct Statements {
    insert: MultiRowInsert,
}

impl Statements {
    fn prepare(db: &Db) -> Result<Self, StoreError> {
        db.exec(CACHE_PRAGMA)?;
        Ok(Self {
            insert: MultiRowInsert::prepare(
                db,
                "INSERT INTO events (uid, sensor_id, class_uid, time, body)",
                5,
                " ON CONFLICT (uid) DO NOTHING",
            )?,
        })
    }

    /// Every batch in one `BEGIN IMMEDIATE … COMMIT`; rolled back whole on any error.
    fn insert_group(&self, db: &Db, batches: &Batches) -> Result<Vec<InsertOutcome>, StoreError> {
        db.transaction(|| {
            batches
                .iter()
                .map(|(sensor, events)| self.insert_batch(db, sensor, events))
                .collect()
        })
    }

    fn insert_batch(
        &self,
        db: &Db,
        sensor: &str,
        events: &[RawEvent],
    ) -> Result<InsertOutcome, StoreError> {
        let stored = self.insert.insert(db, events, |stmt, at, ev| {
            stmt.bind_text(db, at, ev.uid.as_bytes())?;
            stmt.bind_text(db, at + 1, sensor.as_bytes())?;
            stmt.bind_int(db, at + 2, i64::from(ev.class_uid))?;
            stmt.bind_int(db, at + 3, ev.time)?;
            stmt.bind_text(db, at + 4, &ev.json)
        })?;
        let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
        Ok(InsertOutcome {
            stored,
            duplicates: n.saturating_sub(stored),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(through_seq: i64) -> HuntPage {
        HuntPage {
            consumer: "hunt".into(),
            through_seq,
            terms: Vec::new(),
            cmd_lines: Vec::new(),
        }
    }

    fn group(sensor: &str) -> Job {
        Job::Group(vec![(sensor.into(), Vec::new())], oneshot::channel().0)
    }

    /// The writer takes every waiting group of events before a waiting page of the hunting
    /// index, each lane in its own order, and stops once closed and drained.
    #[test]
    fn groups_go_before_index_pages() {
        let jobs = Jobs::default();
        assert!(jobs.push(Job::Page(page(1), oneshot::channel().0)).is_ok());
        assert!(jobs.push(group("a")).is_ok());
        assert!(jobs.push(Job::Page(page(2), oneshot::channel().0)).is_ok());
        assert!(jobs.push(group("b")).is_ok());
        jobs.close();
        assert!(
            jobs.push(group("late")).is_err(),
            "a closed writer takes no work"
        );
        let order: Vec<String> = std::iter::from_fn(|| jobs.next())
            .map(|job| match job {
                Job::Group(b, _) => b[0].0.clone(),
                Job::Page(p, _) => format!("page {}", p.through_seq),
            })
            .collect();
        assert_eq!(order, ["a", "b", "page 1", "page 2"]);
    }
}
