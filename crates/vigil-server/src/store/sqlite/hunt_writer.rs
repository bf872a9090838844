//! The hunting index written by the event writer's thread (prepared statements, C API), in
//! the pauses between group commits: see [`super::writer`].

use std::collections::HashMap;

use super::ffi::{Db, MultiRowInsert, Stmt};
use crate::store::{HuntTerm, StoreError};

/// One page of the hunting index and the cursor position it takes the indexer to.
pub(super) struct HuntPage {
    pub(super) consumer: String,
    pub(super) through_seq: i64,
    pub(super) terms: Vec<HuntTerm>,
    pub(super) cmd_lines: Vec<(i64, String)>,
}

/// The index's statements, prepared once.
pub(super) struct HuntStatements {
    terms: MultiRowInsert,
    text_id: Stmt,
    add_text: Stmt,
    add_trigrams: Stmt,
    text_refs: MultiRowInsert,
    cursor: Stmt,
}

impl HuntStatements {
    pub(super) fn prepare(db: &Db) -> Result<Self, StoreError> {
        Ok(Self {
            terms: MultiRowInsert::prepare(
                db,
                "INSERT OR IGNORE INTO hunt_terms (kind, value, time, seq)",
                4,
                "",
            )?,
            text_id: Stmt::prepare(db, "SELECT id FROM hunt_cmdline_texts WHERE cmd_line = ?")?,
            add_text: Stmt::prepare(db, "INSERT INTO hunt_cmdline_texts (cmd_line) VALUES (?)")?,
            add_trigrams: Stmt::prepare(
                db,
                "INSERT INTO hunt_cmdline_trigrams (rowid, cmd_line) VALUES (?, ?)",
            )?,
            text_refs: MultiRowInsert::prepare(
                db,
                "INSERT OR REPLACE INTO hunt_cmdline_refs (seq, text_id)",
                2,
                "",
            )?,
            cursor: Stmt::prepare(
                db,
                "INSERT INTO cursors (name, seq) VALUES (?, ?)
                 ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            )?,
        })
    }

    /// Writes a page and advances its cursor, in one transaction.
    pub(super) fn write(&self, db: &Db, page: &HuntPage) -> Result<(), StoreError> {
        db.transaction(|| self.write_rows(db, page))
    }

    fn write_rows(&self, db: &Db, page: &HuntPage) -> Result<(), StoreError> {
        self.terms.insert(db, &page.terms, |stmt, at, t| {
            stmt.bind_text(db, at, t.kind.as_bytes())?;
            stmt.bind_text(db, at + 1, t.value.as_bytes())?;
            stmt.bind_int(db, at + 2, t.time)?;
            stmt.bind_int(db, at + 3, t.seq)
        })?;
        // Each distinct text once (most command lines of a page repeat), then every event
        // pointed at its text. An event indexed twice (a cursor that did not advance) keeps one
        // row, the last.
        let mut ids: HashMap<&str, i64> = HashMap::new();
        let mut refs = Vec::with_capacity(page.cmd_lines.len());
        for (seq, text) in &page.cmd_lines {
            let id = match ids.get(text.as_str()) {
                Some(id) => *id,
                None => {
                    let id = self.text_id(db, text)?;
                    ids.insert(text, id);
                    id
                }
            };
            refs.push((*seq, id));
        }
        self.text_refs.insert(db, &refs, |stmt, at, (seq, id)| {
            stmt.bind_int(db, at, *seq)?;
            stmt.bind_int(db, at + 1, *id)
        })?;
        if let Err(e) = self.cursor.bind_text(db, 1, page.consumer.as_bytes()) {
            self.cursor.clear();
            return Err(e);
        }
        self.cursor.bind_int(db, 2, page.through_seq)?;
        self.cursor.execute(db)?;
        Ok(())
    }

    /// The id of a command line's text, stored and added to the trigram index if it is new.
    fn text_id(&self, db: &Db, text: &str) -> Result<i64, StoreError> {
        self.text_id.bind_text(db, 1, text.as_bytes())?;
        if let Some(id) = self.text_id.query_int(db)? {
            return Ok(id);
        }
        self.add_text.bind_text(db, 1, text.as_bytes())?;
        self.add_text.execute(db)?;
        let id = db.last_rowid();
        self.add_trigrams.bind_int(db, 1, id)?;
        if let Err(e) = self.add_trigrams.bind_text(db, 2, text.as_bytes()) {
            self.add_trigrams.clear();
            return Err(e);
        }
        self.add_trigrams.execute(db)?;
        Ok(id)
    }
}
