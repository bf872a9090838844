//! The store contract on SQLite.

use super::SqliteStore;
use crate::store::contract_tests::{Backend, store_contract};

/// A fresh data directory per test.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(self.0.path()).await.unwrap()
    }

    async fn close(&self, store: SqliteStore) {
        store.close().await;
    }

    async fn result_parts_held(&self, store: &SqliteStore) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM result_parts")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }
}

store_contract!(Sqlite::new());
