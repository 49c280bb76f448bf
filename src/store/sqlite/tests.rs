use super::*;
use std::str::FromStr;

use chrono::Utc;
use rust_decimal::Decimal;

use crate::domain::{Currency, Money, Payment, PaymentId, PaymentStatus};
use crate::record::Record;
use crate::store::{CoreStore, RecordStore, RunStore, Store, StoreError};

pub(super) fn eur(v: &str) -> Money {
    Money::from_units(
        Decimal::from_str(v).unwrap(),
        Currency::parse("EUR").unwrap(),
    )
}

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("db").join("recon.sqlite3")).unwrap();
    (dir, s)
}

#[test]
fn reopening_an_existing_database_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite3");
    {
        let mut s = Store::open(&path).unwrap();
        s.begin_run(Utc::now(), false, "full").unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.count("runs").unwrap(), 1);
}

#[test]
fn a_database_that_cannot_be_opened_names_its_path_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let path = file.join("recon.sqlite3");
    let Err(e) = Store::open(&path) else {
        panic!("a database under a plain file opened");
    };
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert!(chain.contains(&path.display().to_string()), "{chain}");
    assert_eq!(
        chain.matches("unable to open database file").count(),
        1,
        "{chain}"
    );
}

/// The message of a write to `path` that SQLite refuses as `setup` arranges.
fn refused_write(path: &Path, setup: impl FnOnce(&Connection)) -> String {
    let c = Connection::open(path).unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS t (x TEXT)")
        .unwrap();
    setup(&c);
    let e = c
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO t SELECT hex(randomblob(4000)) FROM n",
        )
        .unwrap_err();
    let e = StoreError::from(e).in_file(path);
    format!("{:#}", anyhow::Error::from(e))
}

#[test]
fn a_full_disk_names_the_file_and_says_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sqlite3");
    let msg = refused_write(&path, |c| {
        c.pragma_update(None, "max_page_count", 4).unwrap();
    });
    assert_eq!(msg.matches("database or disk is full").count(), 1, "{msg}");
    assert!(
        msg.starts_with(&format!(
            "cannot write {}: its filesystem is full",
            path.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_read_only_database_names_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x TEXT)")
        .unwrap();
    let c = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let e = c.execute_batch("INSERT INTO t VALUES ('x')").unwrap_err();
    let msg = format!(
        "{:#}",
        anyhow::Error::from(StoreError::from(e).in_file(&path))
    );
    assert_eq!(
        msg.matches("attempt to write a readonly database").count(),
        1,
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!("cannot write {}", path.display())),
        "{msg}"
    );
    assert!(msg.contains("write access"), "{msg}");
}

#[test]
fn a_disk_error_at_open_names_the_file_and_what_to_check() {
    // SQLITE_IOERR_SHMSIZE, what a full disk gives when the -shm file cannot grow.
    let path = Path::new("/var/lib/cp-recon/recon.sqlite3");
    let e = StoreError::Open {
        path: path.to_path_buf(),
        error: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(4874), None),
    };
    let msg = format!("{:#}", anyhow::Error::from(e));
    assert!(
        msg.starts_with(
            "cannot open the database: cannot read or write /var/lib/cp-recon/recon.sqlite3 or /var/lib/cp-recon/recon.sqlite3-shm"
        ),
        "{msg}"
    );
    assert!(msg.contains("the disk is full or failing"), "{msg}");
    assert_eq!(msg.matches("4874").count(), 1, "{msg}");
}

#[test]
fn a_write_lock_held_by_another_process_is_waited_for_then_named_with_what_to_do() {
    let (d, mut s) = open();
    let path = s.file().unwrap().to_path_buf();
    s.set_busy_timeout(std::time::Duration::from_millis(200))
        .unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let e = s.begin_run(Utc::now(), false, "full").unwrap_err();
    let waited = started.elapsed();
    assert!(e.is_busy(), "{e:?}");
    assert!(
        waited >= std::time::Duration::from_millis(150),
        "the busy timeout was not honoured: {waited:?}"
    );
    let msg = e.in_file(&path).to_string();
    assert!(
        msg.starts_with(&format!(
            "another process holds a write lock on {}",
            path.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("the next run will continue"), "{msg}");
    drop(d);
}

#[test]
fn a_database_upgraded_by_a_newer_version_is_refused_with_what_to_do() {
    let (d, s) = open();
    let path = s.file().unwrap().to_path_buf();
    s.connection()
        .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
        .unwrap();
    drop(s);
    let e = Store::open(&path).map(|_| ()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::TooNew { found, .. } if found == MIGRATIONS.len() as i64 + 1));
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("newer than this version of cp-recon knows"),
        "{msg}"
    );
    drop(d);
}

#[test]
fn a_version_1_database_keeps_its_matches_and_their_holds_through_migration_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite3");
    {
        let mut c = Connection::open(&path).unwrap();
        Migrations::new(vec![M::up(MIGRATIONS[0])])
            .to_latest(&mut c)
            .unwrap();
        c.execute_batch(
            "INSERT INTO runs (id, started_at, version) VALUES (1, 't', 'v');
             INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount,
                 currency, rule, state, created_at)
             VALUES (1, 'P1', 'T1', 'I', '1.00', 'EUR', 'confident', 'reconciled', 't'),
                    (1, 'P2', 'T2', 'I', '1.00', 'EUR', 'confident', 'unknown', 't'),
                    (1, 'P3', 'T3', 'I', '1.00', 'EUR', 'confident', 'failed', 't'),
                    (1, 'P3', 'T3', 'I', '1.00', 'EUR', 'confident', 'intent', 't'),
                    (1, 'P4', 'T4', 'I', '1.00', 'EUR', 'confident', 'dry_run', 't');",
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let rows: Vec<(String, String, Option<i64>)> = s
        .connection()
        .prepare("SELECT payment_id, state, holds FROM matches ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let holds: Vec<_> = rows
        .iter()
        .map(|(p, st, h)| (p.as_str(), st.as_str(), *h))
        .collect();
    assert_eq!(
        holds,
        [
            ("P1", "reconciled", Some(1)),
            ("P2", "unknown", Some(1)),
            ("P3", "failed", None),
            ("P3", "intent", Some(1)),
            ("P4", "dry_run", None),
        ]
    );
    let held: i64 = s
        .connection()
        .query_row("SELECT COUNT(*) FROM matches WHERE holds = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(held, 3);
    // The migrated indexes still refuse a second hold on P1 or T1.
    let again = s.connection().execute(
        "INSERT INTO matches (run_id, payment_id, transaction_id, iban, amount, currency,
             rule, state, created_at, holds)
         VALUES (1, 'P1', 'T9', 'I', '1.00', 'EUR', 'confident', 'intent', 't', 1)",
        [],
    );
    assert!(again.is_err(), "{again:?}");
}

#[test]
fn after_a_sync_the_wal_is_copied_into_the_database_file_by_the_background_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&d.path().join("db").join("recon.sqlite3")).unwrap();
    let t0 = Utc::now();
    let run = s.begin_run(t0, false, "full").unwrap();
    let pays = |from: usize| -> Vec<Record<Payment>> {
        (from..from + 2_000)
            .map(|i| Record {
                value: Payment {
                    id: PaymentId::parse(format!("P{i:06}")).unwrap(),
                    external_id: None,
                    user_id: None,
                    status: PaymentStatus::parse("pending_bank"),
                    amount: eur("1.00"),
                    payment_type: None,
                    concept: None,
                    created_at: t0,
                    updated_at: None,
                },
                raw: format!(r#"{{"id":"P{i:06}","padding":"{}"}}"#, "x".repeat(200)),
            })
            .collect()
    };
    let file = d.path().join("db").join("recon.sqlite3");
    let size = || std::fs::metadata(&file).unwrap().len();
    s.begin_bulk().unwrap();
    s.begin_batch().unwrap();
    s.upsert_payments(run, t0, &pays(0)).unwrap();
    s.commit_batch().unwrap();
    let during_sync = size();
    s.end_bulk().unwrap();
    // The writer's own connection never checkpoints from here on.
    let auto: i64 = s
        .connection()
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto, 0);
    // A later transaction asks for another checkpoint.
    s.upsert_payments(run, t0, &pays(2_000)).unwrap();
    s.checkpointer.take().unwrap().finish();
    let after = size();
    assert!(
        after > during_sync + 500_000,
        "the rows stayed in the WAL: {during_sync} bytes during the sync, {after} after"
    );
    let rows: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM payments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 4_000);
}

/// Adds about 800 KB of rows to the database at `conn` (some 200 pages).
fn grow(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS filler (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO filler SELECT randomblob(4000) FROM n",
    )
    .unwrap();
}

/// A database grown and closed, its file then cut by `bytes`: its path, and its length
/// before the cut.
fn grown_then_cut(dir: &std::path::Path, bytes: u64) -> (std::path::PathBuf, u64) {
    let path = dir.join("cut.sqlite3");
    {
        let s = Store::open(&path).unwrap();
        grow(s.connection());
    }
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - bytes)
        .unwrap();
    (path, len)
}

#[test]
fn a_database_file_cut_by_less_than_a_page_is_refused_at_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, len) = grown_then_cut(dir.path(), 3000);

    let e = Store::open(&path).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(e));
    assert!(
        msg.starts_with(&format!("database {} is damaged", path.display())),
        "{msg}"
    );
    assert!(
        msg.contains("not a whole number of 4096-byte pages"),
        "{msg}"
    );
    assert!(
        msg.contains("put the last good backup in its place"),
        "{msg}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 3000);
}

/// Whole pages lost are refused too. SQLite's own check refuses this one as the read
/// transaction starts (its header counts more pages than the file holds), before the
/// length check looks: either way the file is refused at open, naming it.
#[test]
fn a_database_file_cut_by_whole_pages_is_refused_at_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = grown_then_cut(dir.path(), 2 * 4096);

    let e = Store::open(&path).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(e));
    assert!(
        msg.starts_with(&format!("database {} is damaged", path.display())),
        "{msg}"
    );
    assert!(
        msg.contains("put the last good backup in its place"),
        "{msg}"
    );
}

/// The bytes of a database grown and checkpointed into its file, then of its WAL after
/// `change` is committed there (not checkpointed): `(file, wal)`.
fn checkpointed_then_in_the_wal(dir: &std::path::Path, change: &str) -> (Vec<u8>, Vec<u8>) {
    let live = dir.join("live.sqlite3");
    {
        let s = Store::open(&live).unwrap();
        grow(s.connection());
    }
    let writer = Store::open(&live).unwrap();
    writer
        .connection()
        .pragma_update(None, "wal_autocheckpoint", 0)
        .unwrap();
    writer.connection().execute(change, []).unwrap();
    let db = std::fs::read(&live).unwrap();
    let wal = std::fs::read(dir.join("live.sqlite3-wal")).unwrap();
    drop(writer);
    assert!(!wal.is_empty(), "the WAL holds the commit");
    (db, wal)
}

/// The case SQLite does not catch: in WAL mode it takes the database's size from the
/// WAL's last commit, so pages cut from the end of the file that the WAL does not hold
/// read as zeros, and their rows vanish.
#[test]
fn a_file_cut_by_whole_pages_behind_a_live_wal_is_refused_naming_the_pages_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    // A commit in the WAL that touches the table's first rows, not its last pages.
    let (db, wal) = checkpointed_then_in_the_wal(
        dir.path(),
        "UPDATE filler SET x = randomblob(4000) WHERE rowid = 1",
    );
    let copy = dir.path().join("copy.sqlite3");
    std::fs::write(&copy, &db[..db.len() - 2 * 4096]).unwrap();
    std::fs::write(dir.path().join("copy.sqlite3-wal"), &wal).unwrap();

    let e = Store::open(&copy).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(e));
    assert!(
        msg.starts_with(&format!("database {} is damaged", copy.display())),
        "{msg}"
    );
    let pages = db.len() / 4096;
    assert!(
        msg.contains(&format!(
            "the database needs {pages} pages of 4096 bytes ({} bytes); 2 of them are neither in the file nor in its WAL",
            db.len()
        )),
        "{msg}"
    );
}

/// A file whose last page is cut short while the WAL holds a newer copy of that page
/// lacks nothing: SQLite reads the page from the WAL.
#[test]
fn a_partial_last_page_the_wal_holds_is_no_damage_and_every_row_reads() {
    let dir = tempfile::tempdir().unwrap();
    // The last row lives on the file's last page: the WAL gets a copy of that page.
    let (db, wal) = checkpointed_then_in_the_wal(
        dir.path(),
        "UPDATE filler SET x = randomblob(4000) WHERE rowid = (SELECT MAX(rowid) FROM filler)",
    );
    let copy = dir.path().join("copy.sqlite3");
    std::fs::write(&copy, &db[..db.len() - 3000]).unwrap();
    std::fs::write(dir.path().join("copy.sqlite3-wal"), &wal).unwrap();

    let s = Store::open(&copy).unwrap();
    let rows: i64 = s
        .connection()
        .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 200);
}

#[test]
fn a_database_whose_growth_is_still_in_a_live_wal_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sqlite3");
    let writer = Store::open(&path).unwrap();
    writer
        .connection()
        .pragma_update(None, "wal_autocheckpoint", 0)
        .unwrap();
    grow(writer.connection());
    let wal = std::fs::metadata(dir.path().join("live.sqlite3-wal"))
        .unwrap()
        .len();
    assert!(wal > 800_000, "the WAL holds the new pages: {wal} bytes");

    let reader = Store::open(&path).unwrap();
    let rows: i64 = reader
        .connection()
        .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 200);
}

/// The last frame of the WAL at `wal` that holds page 1, with 4096-byte pages.
fn last_page_one(wal: &[u8]) -> &[u8] {
    let frame = 24 + 4096;
    (0..(wal.len() - 32) / frame)
        .map(|i| &wal[32 + i * frame..32 + (i + 1) * frame])
        .rfind(|f| f[..4] == 1u32.to_be_bytes())
        .map(|f| &f[24..])
        .expect("a frame of page 1")
}

#[test]
fn a_database_whose_checkpoint_stopped_after_its_new_header_opens_with_every_row() {
    // A checkpoint copies page 1 (the header, with the new page count) before the pages
    // the database grew by: a process killed in between leaves a file shorter than its
    // header says, whose missing pages the WAL still holds.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.sqlite3");
    let writer = Store::open(&live).unwrap();
    writer
        .connection()
        .pragma_update(None, "wal_autocheckpoint", 0)
        .unwrap();
    grow(writer.connection());
    let copy = dir.path().join("copy.sqlite3");
    let mut db = std::fs::read(&live).unwrap();
    let wal = std::fs::read(dir.path().join("live.sqlite3-wal")).unwrap();
    drop(writer);
    db[..4096].copy_from_slice(last_page_one(&wal));
    std::fs::write(&copy, &db).unwrap();
    std::fs::write(dir.path().join("copy.sqlite3-wal"), &wal).unwrap();
    let header_pages = u32::from_be_bytes(db[28..32].try_into().unwrap());
    assert!(
        u64::from(header_pages) * 4096 > db.len() as u64,
        "the header ({header_pages} pages) is ahead of the file ({} bytes)",
        db.len()
    );

    let s = Store::open(&copy).unwrap();
    let rows: i64 = s
        .connection()
        .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 200);
}
