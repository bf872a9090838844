//! Live query: read-only SQL over tables of the host's live state, answered by the agent.
//!
//! Each query gets a fresh in-memory SQLite database holding only the tables it names, filled
//! from `/proc`, `/etc` and the file system at that moment; the database is then switched to
//! `query_only` and the query runs under a deadline (SQLite's progress handler interrupts it)
//! and a row cap. One statement, `SELECT` / `WITH` / `VALUES` only.
//!
//! | table | columns | source |
//! |---|---|---|
//! | `processes` | pid, ppid, name, cmdline, path, cwd, uid, euid, state, start_ticks | `/proc/[pid]` |
//! | `process_open_sockets` | pid, command, protocol, local_address, local_port, remote_address, remote_port, state, inode | `/proc/net/*`, `/proc/[pid]/fd` |
//! | `listening_ports` | pid, command, protocol, address, port, inode | the same, TCP `LISTEN` and unconnected UDP |
//! | `users` | uid, gid, username, description, directory, shell | `/etc/passwd` |
//! | `logged_in_users` | type, user, tty, host, pid, time | `/var/run/utmp` |
//! | `crontab` | path, line | `/etc/crontab`, `/etc/cron.d/*`, `/var/spool/cron/crontabs/*` |
//! | `systemd_units` | name, type, path | unit files under `/etc/systemd/system`, `/run/systemd/system`, `/usr/lib/systemd/system`, `/lib/systemd/system` |
//! | `kernel_modules` | name, size, used_by, status, address | `/proc/modules` |
//! | `file` | path, directory, filename, type, size, mtime, uid, gid, mode | the paths the query names (`path = '…'`, `directory = '…'`) |
//! | `hash` | path, sha256, size | the same; files over 64 MiB are left out |
//!
//! `file` and `hash` need a constraint naming where to look (`WHERE path = '/etc/passwd'` or
//! `WHERE directory = '/etc'`); without one the query is refused with that message.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, QueryBuilder, Row, Sqlite, TypeInfo, ValueRef};

mod tables;

/// Default deadline of a query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most rows a query answers (more are cut and `truncated` is set).
pub const MAX_ROWS: usize = 10_000;
/// Longest query text.
pub const MAX_SQL: usize = 16 * 1024;

/// Every table, with its columns.
pub const TABLES: &[(&str, &[&str])] = &[
    (
        "processes",
        &[
            "pid",
            "ppid",
            "name",
            "cmdline",
            "path",
            "cwd",
            "uid",
            "euid",
            "state",
            "start_ticks",
        ],
    ),
    (
        "process_open_sockets",
        &[
            "pid",
            "command",
            "protocol",
            "local_address",
            "local_port",
            "remote_address",
            "remote_port",
            "state",
            "inode",
        ],
    ),
    (
        "listening_ports",
        &["pid", "command", "protocol", "address", "port", "inode"],
    ),
    (
        "users",
        &[
            "uid",
            "gid",
            "username",
            "description",
            "directory",
            "shell",
        ],
    ),
    (
        "logged_in_users",
        &["type", "user", "tty", "host", "pid", "time"],
    ),
    ("crontab", &["path", "line"]),
    ("systemd_units", &["name", "type", "path"]),
    (
        "kernel_modules",
        &["name", "size", "used_by", "status", "address"],
    ),
    (
        "file",
        &[
            "path",
            "directory",
            "filename",
            "type",
            "size",
            "mtime",
            "uid",
            "gid",
            "mode",
        ],
    ),
    ("hash", &["path", "sha256", "size"]),
];

/// Why a query was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not a single read-only statement, or a constraint is missing.
    #[error("{0}")]
    Refused(String),
    /// The deadline passed.
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// SQLite answered an error (syntax, unknown column…).
    #[error("{0}")]
    Sql(String),
}

/// A query's answer.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<Value>>,
    /// True when rows beyond the cap were left out.
    pub truncated: bool,
    /// Time to fill the tables and run the query.
    pub took_ms: u64,
}

/// The tables `sql` names (as whole words).
fn named_tables(sql: &str) -> BTreeSet<&'static str> {
    let words: BTreeSet<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_ascii_lowercase)
        .collect();
    TABLES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| words.contains(*t))
        .collect()
}

/// The text with `--` and `/* */` comments and string literals blanked, for keyword checks.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push_str(" '' ");
            }
            other => out.push(other),
        }
    }
    out
}

/// Refuses what is not one read-only statement.
fn check(sql: &str) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL {
        return Err(QueryError::Refused(format!(
            "the query is longer than {MAX_SQL} bytes"
        )));
    }
    let code = code_only(sql);
    let code = code.trim().trim_end_matches(';').trim();
    if code.contains(';') {
        return Err(QueryError::Refused(
            "one statement per query: remove the ';' between statements".into(),
        ));
    }
    let first = code
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(first.as_str(), "select" | "with" | "values") {
        return Err(QueryError::Refused(format!(
            "live queries are read-only: a query starts with SELECT, WITH or VALUES, not {:?}",
            first.to_uppercase()
        )));
    }
    let lower = code.to_ascii_lowercase();
    // (A `WITH … DELETE` starts like a read; `query_only` would refuse it too.)
    for word in [
        "attach",
        "detach",
        "pragma",
        "insert",
        "update",
        "delete",
        "create",
        "drop",
        "alter",
        "vacuum",
        "load_extension",
    ] {
        if lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == word)
        {
            return Err(QueryError::Refused(format!(
                "live queries are read-only: {} is not allowed",
                word.to_uppercase()
            )));
        }
    }
    Ok(())
}

/// Runs `sql` against the host's live tables.
pub async fn run(sql: &str, timeout: Duration, max_rows: usize) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    check(sql)?;
    let tables = named_tables(sql);
    let constraints = tables::PathConstraints::of(sql);
    if (tables.contains("file") || tables.contains("hash")) && constraints.is_empty() {
        return Err(QueryError::Refused(
            "the file and hash tables need to be told where to look: WHERE path = '/…' or \
             WHERE directory = '/…'"
                .into(),
        ));
    }
    let sqlerr = |e: sqlx::Error| QueryError::Sql(e.to_string());
    let mut conn = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(sqlerr)?
        .connect()
        .await
        .map_err(sqlerr)?;
    for (name, columns) in TABLES {
        let ddl = format!("CREATE TABLE {name} ({})", columns.join(", "));
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut conn)
            .await
            .map_err(sqlerr)?;
    }
    for name in &tables {
        let rows = tables::fill(name, &constraints).await;
        insert(&mut conn, name, &rows).await.map_err(sqlerr)?;
    }
    sqlx::query("PRAGMA query_only = ON")
        .execute(&mut conn)
        .await
        .map_err(sqlerr)?;
    let deadline = started + timeout;
    conn.lock_handle()
        .await
        .map_err(sqlerr)?
        .set_progress_handler(1000, move || Instant::now() < deadline);
    let mut rows = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let mut truncated = false;
    let outcome = {
        let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch(&mut conn);
        loop {
            match stream.try_next().await {
                Ok(Some(row)) => {
                    if columns.is_empty() {
                        columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    }
                    if rows.len() >= max_rows {
                        truncated = true;
                        break Ok(());
                    }
                    rows.push(values(&row));
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        }
    };
    let _ = conn.close().await;
    match outcome {
        Ok(()) => Ok(QueryResult {
            columns,
            rows,
            truncated,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }),
        Err(_) if Instant::now() >= deadline => Err(QueryError::Timeout(timeout)),
        Err(e) => Err(QueryError::Sql(e.to_string())),
    }
}

async fn insert(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    // 999 parameters per statement at most; tables have at most 10 columns.
    for chunk in rows.chunks(90) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("INSERT INTO {table} "));
        qb.push_values(chunk, |mut b, row| {
            for v in row {
                match v {
                    Value::Null => b.push_bind(None::<String>),
                    Value::Bool(true) => b.push_bind(1i64),
                    Value::Bool(false) => b.push_bind(0i64),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => b.push_bind(i),
                        None => b.push_bind(n.as_f64().unwrap_or_default()),
                    },
                    Value::String(s) => b.push_bind(s.clone()),
                    other => b.push_bind(other.to_string()),
                };
            }
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

fn values(row: &SqliteRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i);
            let Ok(raw) = raw else { return Value::Null };
            if raw.is_null() {
                return Value::Null;
            }
            match raw.type_info().name() {
                "INTEGER" => row.try_get::<i64, _>(i).map_or(Value::Null, Value::from),
                "REAL" => row.try_get::<f64, _>(i).map_or(Value::Null, Value::from),
                "BLOB" => row
                    .try_get::<Vec<u8>, _>(i)
                    .map_or(Value::Null, |b| Value::from(hex::encode(b))),
                _ => row.try_get::<String, _>(i).map_or(Value::Null, Value::from),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_read_only_statement_passes() {
        assert!(check("SELECT * FROM processes").is_ok());
        assert!(check("with x as (select 1) select * from x;").is_ok());
        assert!(check("select ';' as s -- drop table x").is_ok());
        for bad in [
            "DELETE FROM processes",
            "select 1; delete from processes",
            "ATTACH DATABASE '/tmp/x' AS y",
            "PRAGMA query_only = OFF",
            "select * from processes where name in (select name from x); insert into y values (1)",
        ] {
            assert!(matches!(check(bad), Err(QueryError::Refused(_))), "{bad}");
        }
    }

    #[test]
    fn tables_are_found_by_name() {
        let t = named_tables("select p.pid from processes p join listening_ports l using (pid)");
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            ["listening_ports", "processes"]
        );
    }
}
