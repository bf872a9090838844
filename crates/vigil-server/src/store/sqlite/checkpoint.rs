//! The WAL checkpointed off the write path: no commit copies the WAL into the database file
//! (`wal_autocheckpoint = 0` on every connection, [`super::SqliteStore::open`]); a task of the
//! store does, passively, so neither readers nor the event writer wait for it.

use std::time::Duration;

use sqlx::SqlitePool;

use super::writer;

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL passively every [`CHECKPOINT_EVERY`] until the store is closed or
/// dropped (its event writer gone).
pub(super) async fn every_while_open(pool: SqlitePool, open: std::sync::Weak<writer::EventWriter>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match open.upgrade() {
            Some(writer) if !writer.is_closed() => {}
            _ => return,
        }
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
    }
}
