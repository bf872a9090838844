//! The event writer: one dedicated connection on its own thread, inserting group commits with
//! prepared multi-row statements straight through the SQLite C API.
//!
//! Going through sqlx's query layer cost more than SQLite itself: every group rebuilt its SQL,
//! boxed every argument and crossed to the connection's worker thread per statement. Here the
//! connection is opened (and configured) by sqlx like every other, then its handle is locked
//! out of sqlx for the life of the thread; the statements are prepared once and the event JSON
//! is bound as the bytes it arrived in.
//!
//! Durability is unchanged: `synchronous = FULL`, one transaction (one WAL fsync) per group,
//! and the caller hears back only after `COMMIT` returned.

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, mpsc};

use libsqlite3_sys as ffi;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::oneshot;
use vigil_ocsf::RawEvent;

use crate::store::{InsertOutcome, StoreError};

/// Rows per prepared statement, largest first; a batch is cut into these (100 = 64 + 32 + 4).
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];
/// Page cache of the writer connection (64 MiB): the `uid` index of a large log stays hot.
const CACHE_PRAGMA: &CStr = c"PRAGMA cache_size = -65536";

type Batches = Vec<(String, Vec<RawEvent>)>;
type Reply = oneshot::Sender<Result<Vec<InsertOutcome>, StoreError>>;

/// Hands group commits to the writer thread.
pub(super) struct EventWriter {
    jobs: Mutex<Option<mpsc::Sender<(Batches, Reply)>>>,
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
        let (jobs, rx) = mpsc::channel();
        let (ready_tx, ready) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("vigil-event-writer".into())
            .spawn(move || {
                run(conn, rx, ready_tx);
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Engine(format!("cannot start the event writer: {e}")))?;
        ready
            .await
            .map_err(|_| StoreError::Engine("the event writer died at start".into()))??;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            done: Mutex::new(Some(done)),
        })
    }

    /// Inserts every batch in one transaction; returns once it is committed.
    pub(super) async fn insert(&self, batches: Batches) -> Result<Vec<InsertOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .map_err(|_| closed())?
            .as_ref()
            .map(|jobs| jobs.send((batches, reply)).is_ok());
        if sent != Some(true) {
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }

    /// Whether [`EventWriter::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.jobs.lock().map_or(true, |jobs| jobs.is_none())
    }

    /// Stops the thread after the work in hand and closes its connection.
    pub(super) async fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}

fn closed() -> StoreError {
    StoreError::Engine("the event writer is closed".into())
}

fn run(
    mut conn: SqliteConnection,
    jobs: mpsc::Receiver<(Batches, Reply)>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut locked = match futures::executor::block_on(conn.lock_handle()) {
        Ok(locked) => locked,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let db = Db(locked.as_raw_handle());
    let statements = match Statements::prepare(&db) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok((batches, reply)) = jobs.recv() {
        let result = statements.insert_group(&db, &batches);
        let _ = reply.send(result);
    }
    drop(statements);
    drop(locked);
    let _ = futures::executor::block_on(sqlx::Connection::close(conn));
}

/// The writer's connection handle, valid while sqlx's lock on it is held.
struct Db(NonNull<ffi::sqlite3>);

impl Db {
    fn raw(&self) -> *mut ffi::sqlite3 {
        self.0.as_ptr()
    }

    /// The error SQLite reports for `rc` on this connection.
    fn error(&self, rc: c_int, doing: &str) -> StoreError {
        // SAFETY: the handle is open; errmsg returns a NUL-terminated string owned by SQLite,
        // copied before any further call on the connection.
        let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.raw())) };
        StoreError::Engine(format!("{doing}: {} (code {rc})", msg.to_string_lossy()))
    }

    fn exec(&self, sql: &CStr) -> Result<(), StoreError> {
        // SAFETY: the handle is open and `sql` NUL-terminated; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.raw(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc, &sql.to_string_lossy()))
        }
    }
}

/// A prepared statement, finalized on drop (before the connection's lock is released).
struct Stmt(NonNull<ffi::sqlite3_stmt>);

impl Stmt {
    fn prepare(db: &Db, sql: &str) -> Result<Self, StoreError> {
        let len =
            c_int::try_from(sql.len()).map_err(|_| StoreError::Engine("SQL too long".into()))?;
        let mut raw = ptr::null_mut();
        // SAFETY: `sql` outlives the call and its length is given; `raw` receives the statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db.raw(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &raw mut raw,
                ptr::null_mut(),
            )
        };
        match NonNull::new(raw) {
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(Self(stmt)),
            _ => Err(db.error(rc, "preparing the event insert")),
        }
    }

    fn bind_text(&self, db: &Db, index: c_int, text: &[u8]) -> Result<(), StoreError> {
        let len =
            c_int::try_from(text.len()).map_err(|_| StoreError::Engine("value too long".into()))?;
        // SAFETY: SQLITE_STATIC: SQLite reads `text` during the `step` that follows, which runs
        // while the caller still borrows it; bindings are cleared before the borrow ends.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.0.as_ptr(),
                index,
                text.as_ptr().cast(),
                len,
                ffi::SQLITE_STATIC(),
            )
        };
        ok(db, rc, "binding an event")
    }

    fn bind_int(&self, db: &Db, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: the statement is live.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.0.as_ptr(), index, value) };
        ok(db, rc, "binding an event")
    }

    /// Runs the statement to completion; the rows it changed.
    fn execute(&self, db: &Db) -> Result<u32, StoreError> {
        // SAFETY: the statement is live and fully bound; reset re-arms it; clear_bindings drops
        // the borrowed pointers.
        let (rc, changes) = unsafe {
            let rc = ffi::sqlite3_step(self.0.as_ptr());
            let changes = ffi::sqlite3_changes(db.raw());
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
            (rc, changes)
        };
        if rc == ffi::SQLITE_DONE {
            Ok(u32::try_from(changes).unwrap_or(0))
        } else {
            Err(db.error(rc, "inserting events"))
        }
    }
}

impl Stmt {
    /// Drops every binding (and with it every borrowed pointer).
    fn clear(&self) {
        // SAFETY: the statement is live.
        unsafe {
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
    }
}

fn bind_chunk(db: &Db, stmt: &Stmt, sensor: &str, chunk: &[RawEvent]) -> Result<(), StoreError> {
    for (i, ev) in chunk.iter().enumerate() {
        let base = c_int::try_from(i * 5).unwrap_or(c_int::MAX);
        stmt.bind_text(db, base + 1, ev.uid.as_bytes())?;
        stmt.bind_text(db, base + 2, sensor.as_bytes())?;
        stmt.bind_int(db, base + 3, i64::from(ev.class_uid))?;
        stmt.bind_int(db, base + 4, ev.time)?;
        stmt.bind_text(db, base + 5, &ev.json)?;
    }
    Ok(())
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, while the connection is still open.
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

fn ok(db: &Db, rc: c_int, doing: &str) -> Result<(), StoreError> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(db.error(rc, doing))
    }
}

/// One insert per chunk size in [`CHUNKS`].
struct Statements {
    inserts: Vec<(usize, Stmt)>,
}

impl Statements {
    fn prepare(db: &Db) -> Result<Self, StoreError> {
        db.exec(CACHE_PRAGMA)?;
        let inserts = CHUNKS
            .iter()
            .map(|&rows| {
                let values = vec!["(?, ?, ?, ?, ?)"; rows].join(", ");
                let sql = format!(
                    "INSERT INTO events (uid, sensor_id, class_uid, time, body) VALUES {values} \
                     ON CONFLICT (uid) DO NOTHING"
                );
                Ok((rows, Stmt::prepare(db, &sql)?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { inserts })
    }

    /// Every batch in one `BEGIN IMMEDIATE … COMMIT`; rolled back whole on any error.
    fn insert_group(&self, db: &Db, batches: &Batches) -> Result<Vec<InsertOutcome>, StoreError> {
        db.exec(c"BEGIN IMMEDIATE")?;
        let result = batches
            .iter()
            .map(|(sensor, events)| self.insert_batch(db, sensor, events))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|outs| db.exec(c"COMMIT").map(|()| outs));
        if result.is_err() {
            let _ = db.exec(c"ROLLBACK");
        }
        result
    }

    fn insert_batch(
        &self,
        db: &Db,
        sensor: &str,
        events: &[RawEvent],
    ) -> Result<InsertOutcome, StoreError> {
        let mut out = InsertOutcome::default();
        let mut rest = events;
        while !rest.is_empty() {
            let (rows, stmt) = self
                .inserts
                .iter()
                .find(|(rows, _)| *rows <= rest.len())
                .ok_or_else(|| StoreError::Engine("no insert statement fits".into()))?;
            let (chunk, tail) = rest.split_at(*rows);
            if let Err(e) = bind_chunk(db, stmt, sensor, chunk) {
                stmt.clear();
                return Err(e);
            }
            let inserted = stmt.execute(db)?;
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            out.stored += inserted;
            out.duplicates += n.saturating_sub(inserted);
            rest = tail;
        }
        Ok(out)
    }
}
