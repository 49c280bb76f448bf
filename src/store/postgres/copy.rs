//! `cp-recon db copy --to URL`: an SQLite database copied into an empty PostgreSQL one,
//! every table in one transaction, checked by the row count of every table before it
//! commits.
//!
//! Both schemas are at the same version (each is migrated first), with the same tables
//! and columns (the schema parity test): each table's columns are read from the
//! server, selected by name from SQLite, and inserted in chunks of
//! [`CHUNK`] rows as arrays, one statement per chunk. Ids are kept, and each identity is
//! moved past the largest id copied. Nothing is converted: integers stay integers,
//! timestamps and amounts stay the text they are; a value of another type than its
//! column's (a hand edit in SQLite's dynamic typing) stops the copy, naming the table,
//! the row and the column. A failure anywhere rolls back everything.

use rusqlite::types::ValueRef;

use super::{PgConn, PgError};

/// Every table of the store, parents before the tables that reference them.
pub const TABLES: [&str; 13] = [
    "runs",
    "run_lists",
    "watermarks",
    "payments",
    "offramps",
    "bank_accounts",
    "bank_transactions",
    "bad_records",
    "matches",
    "findings",
    "reports",
    "alerts",
    "decisions",
];

/// Rows sent per statement.
pub const CHUNK: usize = 5_000;

/// How many rows of a table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "the target {target} is not empty: table {table} has rows; copy into a new, empty database"
    )]
    NotEmpty { target: String, table: &'static str },
    #[error(
        "SQLite table {table}, row {rowid}, column {column}: {found} where the column holds {wanted}"
    )]
    Value {
        table: &'static str,
        rowid: i64,
        column: String,
        found: &'static str,
        wanted: &'static str,
    },
    #[error(
        "table {table}: {sqlite} rows in SQLite, {postgres} in PostgreSQL after the copy; nothing was committed"
    )]
    Count {
        table: &'static str,
        sqlite: u64,
        postgres: u64,
    },
    #[error(
        "the target's table {table} has a column of type {kind} the copy does not know ({column})"
    )]
    ColumnType {
        table: &'static str,
        column: String,
        kind: String,
    },
    #[error("reading the SQLite database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] PgError),
}

/// One column's values of a chunk, as the array bound for it.
enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

/// Copies every table of `sqlite` into `target`, whose schema must be at the same
/// version and hold no row. One transaction on `target`: all of it, or nothing.
pub fn copy_sqlite(
    sqlite: &rusqlite::Connection,
    target: &PgConn,
) -> Result<Vec<Copied>, CopyError> {
    target.run(|c| c.batch_execute("BEGIN"))?;
    match copy_in_tx(sqlite, target) {
        Ok(copied) => {
            target.run(|c| c.batch_execute("COMMIT"))?;
            Ok(copied)
        }
        Err(e) => {
            let _ = target.run(|c| c.batch_execute("ROLLBACK"));
            Err(e)
        }
    }
}

fn copy_in_tx(sqlite: &rusqlite::Connection, target: &PgConn) -> Result<Vec<Copied>, CopyError> {
    for table in TABLES {
        let has_rows: bool = target.run(move |c| {
            Ok(
                c.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
                    .get(0),
            )
        })?;
        if has_rows {
            return Err(CopyError::NotEmpty {
                target: target.target().to_owned(),
                table,
            });
        }
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let columns: Vec<(String, String)> = target.run(move |c| {
            Ok(c.query(
                "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&table],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })?;
        let ints: Vec<bool> = columns
            .iter()
            .map(|(name, kind)| match kind.as_str() {
                "bigint" => Ok(true),
                "text" => Ok(false),
                other => Err(CopyError::ColumnType {
                    table,
                    column: name.clone(),
                    kind: other.to_owned(),
                }),
            })
            .collect::<Result<_, _>>()?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) SELECT * FROM UNNEST({})",
            names.join(", "),
            ints.iter()
                .enumerate()
                .map(|(i, int)| format!("${}::{}[]", i + 1, if *int { "BIGINT" } else { "TEXT" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut st = sqlite.prepare(&format!(
            "SELECT rowid, {} FROM {table} ORDER BY rowid",
            names.join(", ")
        ))?;
        let mut rows = st.query([])?;
        let mut chunk = empty(&ints);
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(0)?;
            for (i, values) in chunk.iter_mut().enumerate() {
                let v = row.get_ref(i + 1)?;
                let wrong = |wanted| CopyError::Value {
                    table,
                    rowid,
                    column: names[i].to_owned(),
                    found: kind(v),
                    wanted,
                };
                match (values, v) {
                    (Values::Int(out), ValueRef::Null) => out.push(None),
                    (Values::Int(out), ValueRef::Integer(x)) => out.push(Some(x)),
                    (Values::Int(_), _) => return Err(wrong("integers")),
                    (Values::Text(out), ValueRef::Null) => out.push(None),
                    (Values::Text(out), ValueRef::Text(t)) => out.push(Some(
                        std::str::from_utf8(t)
                            .map_err(|_| wrong("UTF-8 text"))?
                            .to_owned(),
                    )),
                    (Values::Text(_), _) => return Err(wrong("text")),
                }
            }
            n += 1;
            if n.is_multiple_of(CHUNK as u64) {
                send(target, &insert, std::mem::replace(&mut chunk, empty(&ints)))?;
            }
        }
        if !n.is_multiple_of(CHUNK as u64) {
            send(target, &insert, chunk)?;
        }
        copied.push(Copied { table, rows: n });
    }
    // Each identity continues past the largest id copied, so the next run's rows do
    // not collide with them.
    target.run(|c| {
        let identities = c.query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )?;
        for r in identities {
            let (t, col): (String, String) = (r.get(0), r.get(1));
            c.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{col}'),
                                   COALESCE((SELECT MAX({col}) FROM {t}), 0) + 1, false)"
                ),
                &[],
            )?;
        }
        Ok(())
    })?;
    for Copied { table, rows } in &copied {
        let table = *table;
        let sqlite_rows: i64 =
            sqlite.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        let pg_rows: i64 = target.run(move |c| {
            Ok(c.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
                .get(0))
        })?;
        if sqlite_rows as u64 != *rows || pg_rows != sqlite_rows {
            return Err(CopyError::Count {
                table,
                sqlite: sqlite_rows as u64,
                postgres: pg_rows as u64,
            });
        }
    }
    Ok(copied)
}

fn empty(ints: &[bool]) -> Vec<Values> {
    ints.iter()
        .map(|int| {
            if *int {
                Values::Int(Vec::with_capacity(CHUNK))
            } else {
                Values::Text(Vec::with_capacity(CHUNK))
            }
        })
        .collect()
}

fn kind(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// Inserts one chunk: one statement, each column an array.
fn send(target: &PgConn, insert: &str, chunk: Vec<Values>) -> Result<(), CopyError> {
    let insert = insert.to_owned();
    target.run(move |c| {
        let params: Vec<Box<dyn postgres::types::ToSql + Sync>> = chunk
            .into_iter()
            .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
                match v {
                    Values::Int(x) => Box::new(x),
                    Values::Text(x) => Box::new(x),
                }
            })
            .collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref()).collect();
        c.execute(&insert, &refs)?;
        Ok(())
    })?;
    Ok(())
}
