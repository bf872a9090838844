//! The few SQLite C API calls the event writer's thread makes on its own connection: prepared
//! statements bound to borrowed bytes, and a busy handler that waits in short steps.

use std::ffi::{CStr, c_int, c_void};
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as ffi;

use crate::store::StoreError;

/// The writer's connection handle, valid while sqlx's lock on it is held.
pub(super) struct Db(pub(super) NonNull<ffi::sqlite3>);

/// How long the writer waits in one step of its busy handler…
const BUSY_STEP: Duration = Duration::from_micros(200);
/// …and how many steps before it gives up (10 s in all, sqlx's busy timeout elsewhere).
const BUSY_STEPS: c_int = 50_000;

/// The busy handler of the writer's connection: another connection of the store holds the
/// write lock (a detection commit, an operator's change). SQLite's own handler sleeps in
/// growing steps, up to 100 ms each, so a writer that starts waiting just before the lock is
/// released can sleep long after it; this one looks again every [`BUSY_STEP`], so the writer
/// gets the lock within a fraction of a millisecond of its release, ahead of the store's
/// other connections, which wait in SQLite's steps.
extern "C" fn busy(_: *mut c_void, attempts: c_int) -> c_int {
    if attempts >= BUSY_STEPS {
        return 0;
    }
    std::thread::sleep(BUSY_STEP);
    1
}

impl Db {
    pub(super) fn raw(&self) -> *mut ffi::sqlite3 {
        self.0.as_ptr()
    }

    /// Replaces the connection's busy timeout with [`busy`].
    pub(super) fn wait_in_short_steps(&self) -> Result<(), StoreError> {
        // SAFETY: the handle is open; the handler takes no argument.
        let rc = unsafe { ffi::sqlite3_busy_handler(self.raw(), Some(busy), ptr::null_mut()) };
        ok(self, rc, "setting the busy handler")
    }

    /// The error SQLite reports for `rc` on this connection.
    pub(super) fn error(&self, rc: c_int, doing: &str) -> StoreError {
        // SAFETY: the handle is open; errmsg returns a NUL-terminated string owned by SQLite,
        // copied before any further call on the connection.
        let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.raw())) };
        StoreError::Engine(format!("{doing}: {} (code {rc})", msg.to_string_lossy()))
    }

    pub(super) fn exec(&self, sql: &CStr) -> Result<(), StoreError> {
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

    /// Runs `work` in one `BEGIN IMMEDIATE … COMMIT`, rolled back whole on any error.
    pub(super) fn transaction<T>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.exec(c"BEGIN IMMEDIATE")?;
        let result = work().and_then(|out| self.exec(c"COMMIT").map(|()| out));
        if result.is_err() {
            let _ = self.exec(c"ROLLBACK");
        }
        result
    }

    /// The rowid of the last row inserted on this connection.
    pub(super) fn last_rowid(&self) -> i64 {
        // SAFETY: the handle is open.
        unsafe { ffi::sqlite3_last_insert_rowid(self.raw()) }
    }
}

/// A prepared statement, finalized on drop (before the connection's lock is released).
pub(super) struct Stmt(NonNull<ffi::sqlite3_stmt>);

impl Stmt {
    pub(super) fn prepare(db: &Db, sql: &str) -> Result<Self, StoreError> {
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
            _ => Err(db.error(rc, "preparing a statement")),
        }
    }

    /// Binds borrowed text. The statement must be run (or cleared) while `text` is borrowed:
    /// [`Stmt::execute`], [`Stmt::query_int`] and [`Stmt::clear`] drop every binding.
    pub(super) fn bind_text(&self, db: &Db, index: c_int, text: &[u8]) -> Result<(), StoreError> {
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
        ok(db, rc, "binding a value")
    }

    pub(super) fn bind_int(&self, db: &Db, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: the statement is live.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.0.as_ptr(), index, value) };
        ok(db, rc, "binding a value")
    }

    /// Runs the statement to completion; the rows it changed.
    pub(super) fn execute(&self, db: &Db) -> Result<u32, StoreError> {
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
            Err(db.error(rc, "writing"))
        }
    }

    /// Runs a query for its first row's first column, as an integer (`None`: no row).
    pub(super) fn query_int(&self, db: &Db) -> Result<Option<i64>, StoreError> {
        // SAFETY: as for `execute`; the column is read before the reset.
        let (rc, value) = unsafe {
            let rc = ffi::sqlite3_step(self.0.as_ptr());
            let value =
                (rc == ffi::SQLITE_ROW).then(|| ffi::sqlite3_column_int64(self.0.as_ptr(), 0));
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
            (rc, value)
        };
        if rc == ffi::SQLITE_ROW || rc == ffi::SQLITE_DONE {
            Ok(value)
        } else {
            Err(db.error(rc, "reading"))
        }
    }

    /// Drops every binding (and with it every borrowed pointer).
    pub(super) fn clear(&self) {
        // SAFETY: the statement is live.
        unsafe {
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, while the connection is still open.
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

pub(super) fn ok(db: &Db, rc: c_int, doing: &str) -> Result<(), StoreError> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(db.error(rc, doing))
    }
}

/// Rows per prepared multi-row insert, largest first; rows are cut into these (100 = 64 + 32
/// + 4).
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// An insert prepared once per chunk size in [`CHUNKS`]: many rows per statement run, without
/// building SQL per call.
pub(super) struct MultiRowInsert {
    statements: Vec<(usize, Stmt)>,
    /// Values bound per row.
    columns: usize,
}

impl MultiRowInsert {
    /// `INSERT … VALUES (?, …), (?, …) …{tail}` for `columns` values per row.
    pub(super) fn prepare(
        db: &Db,
        head: &str,
        columns: usize,
        tail: &str,
    ) -> Result<Self, StoreError> {
        let row = format!("({})", vec!["?"; columns].join(", "));
        let statements = CHUNKS
            .iter()
            .map(|&rows| {
                let sql = format!(
                    "{head} VALUES {}{tail}",
                    vec![row.as_str(); rows].join(", ")
                );
                Ok((rows, Stmt::prepare(db, &sql)?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            statements,
            columns,
        })
    }

    /// Inserts every item, binding each with `bind(statement, first parameter index, item)`;
    /// the rows changed.
    pub(super) fn insert<T>(
        &self,
        db: &Db,
        items: &[T],
        bind: impl Fn(&Stmt, c_int, &T) -> Result<(), StoreError>,
    ) -> Result<u32, StoreError> {
        let mut changed = 0;
        let mut rest = items;
        while !rest.is_empty() {
            let (rows, stmt) = self
                .statements
                .iter()
                .find(|(rows, _)| *rows <= rest.len())
                .ok_or_else(|| StoreError::Engine("no insert statement fits".into()))?;
            let (chunk, tail) = rest.split_at(*rows);
            let bound = chunk.iter().enumerate().try_for_each(|(i, item)| {
                let first = c_int::try_from(i * self.columns + 1)
                    .map_err(|_| StoreError::Engine("too many values".into()))?;
                bind(stmt, first, item)
            });
            if let Err(e) = bound {
                stmt.clear();
                return Err(e);
            }
            changed += stmt.execute(db)?;
            rest = tail;
        }
        Ok(changed)
    }
}
