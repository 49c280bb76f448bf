//! The run lock: two runs never overlap on one database (reconciliation rules §5).
//!
//! Two exclusive `flock`s, taken without waiting: one on the database file itself, one
//! on `<database>.lock` beside the path given. The first follows the file, whatever
//! path reaches it: a symlink, a symlinked directory or a hard link to the database
//! lock the same file. The second holds the pid note a refused run prints, and keeps
//! refusing runs of earlier versions, which lock only that file. The kernel releases
//! both when the holding process ends, however it ends, so a lock left by a killed run
//! never blocks the next one.
//!
//! SQLite locks the database with POSIX (`fcntl`) locks, which are independent of
//! `flock` on Linux: the two do not interfere. But closing *any* descriptor of a file
//! drops all of the process's POSIX locks on it, so the descriptor held here must be
//! closed after every SQLite connection of the run (see [`RunLock`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// `path` is the database path given; `detail` names the real file when it differs
    /// and the holder's pid when known.
    #[error("another run is in progress: it holds the database {path}{detail}")]
    Held { path: PathBuf, detail: String },
    /// The database's directory is missing and cannot be created (a read-only
    /// filesystem, a path under a file, no permission).
    #[error(
        "cannot create {dir}, the directory of the database {db}: create it, writable by the job's user, or set [database] path to a writable place"
    )]
    Dir {
        dir: PathBuf,
        db: PathBuf,
        source: std::io::Error,
    },
    #[error("lock {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held for the whole run; released on drop (or by the kernel if the process dies).
///
/// It keeps a descriptor of the database file open. Closing it drops every POSIX lock
/// this process holds on the database, including those of SQLite connections still
/// open, which would then run unprotected from another process. So a `RunLock` must be
/// dropped only after every connection to its database (every `Store`, `SharedStore`
/// and their threads) is closed: bind it first in the function that opens them, so it
/// is dropped last.
#[derive(Debug)]
pub struct RunLock {
    _database: File,
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file beside the database.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut p = db.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// Takes the lock without waiting. A missing database is created empty (a valid
    /// empty SQLite database) so that it can be locked.
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let path = Self::path_for(db);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Err(source) = std::fs::create_dir_all(dir)
            // Something that is not a directory is in the way: opening the file below
            // says so ("Not a directory"), naming the database.
            && source.kind() != ErrorKind::AlreadyExists
        {
            // Said here: opening the file below would only say "No such file or directory".
            return Err(LockError::Dir {
                dir: dir.to_path_buf(),
                db: db.to_path_buf(),
                source,
            });
        }
        let database = open_database(db).map_err(|source| LockError::Io {
            path: db.to_path_buf(),
            source,
        })?;
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        match database.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held(db)),
            Err(TryLockError::Error(e)) => {
                return Err(LockError::Io {
                    path: db.to_path_buf(),
                    source: e,
                });
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held(db)),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the message a second run prints. Best effort.
        let _ = file.set_len(0);
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(Self {
            _database: database,
            _file: file,
            path,
        })
    }

    /// The lock file beside the database path given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The database file, following symlinks: read-only when it exists (a lock needs no
/// more), created empty when it does not. Created with SQLite's own mode (0644 less
/// the umask).
fn open_database(db: &Path) -> std::io::Result<File> {
    match File::open(db) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut create = OpenOptions::new();
            create.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o644);
            create.open(db)
        }
        other => other,
    }
}

/// The refusal: the path given, the real file when it differs, and the holder's pid
/// when a lock file held by a live run says it.
fn held(db: &Path) -> LockError {
    let real = std::fs::canonicalize(db).ok();
    let mut notes = Vec::new();
    if let Some(real) = real.as_deref().filter(|r| *r != db) {
        notes.push(format!("the file {}", real.display()));
    }
    let candidates = std::iter::once(db).chain(real.as_deref());
    if let Some(note) = candidates.map(RunLock::path_for).find_map(holder) {
        notes.push(format!("held by {note}"));
    }
    let detail = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    LockError::Held {
        path: db.to_path_buf(),
        detail,
    }
}

/// The note in a lock file, if a live run holds that file: a note left by a run that
/// ended says nothing. The probe is a shared lock, held for an instant.
fn holder(lock: PathBuf) -> Option<String> {
    let file = File::open(&lock).ok()?;
    if !matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)) {
        return None;
    }
    let note = std::fs::read_to_string(&lock).ok()?;
    Some(note.trim().to_owned()).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with an empty database file `real/recon.sqlite3`.
    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let db = dir.path().join("real").join("recon.sqlite3");
        File::create(&db).unwrap();
        (dir, db)
    }

    fn refused(db: &Path) -> String {
        match RunLock::acquire(db) {
            Err(e @ LockError::Held { .. }) => e.to_string(),
            other => panic!("{} was not refused as held: {other:?}", db.display()),
        }
    }

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("recon.sqlite3");
        let first = RunLock::acquire(&db).unwrap();
        let err = refused(&db);
        assert!(
            err.contains(&format!(
                "another run is in progress: it holds the database {}",
                db.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("held by pid {}", std::process::id())),
            "{err}"
        );
        assert!(
            !err.contains("the file"),
            "the path given is the file: {err}"
        );
        drop(first);
        RunLock::acquire(&db).unwrap();
    }

    #[test]
    fn a_missing_database_is_created_empty_to_be_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state").join("recon.sqlite3");
        let _lock = RunLock::acquire(&db).unwrap();
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    }

    #[test]
    fn a_second_lock_through_a_symlink_to_the_database_is_refused_naming_the_real_file() {
        let (dir, db) = database();
        let alias = dir.path().join("alias.sqlite3");
        std::os::unix::fs::symlink(&db, &alias).unwrap();
        let _first = RunLock::acquire(&db).unwrap();
        let err = refused(&alias);
        assert!(err.contains(&alias.display().to_string()), "{err}");
        let real = std::fs::canonicalize(&db).unwrap();
        assert!(
            err.contains(&format!("the file {}", real.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("held by pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn a_second_lock_through_a_hard_link_to_the_database_is_refused() {
        let (dir, db) = database();
        let other = dir.path().join("other.sqlite3");
        std::fs::hard_link(&db, &other).unwrap();
        let _first = RunLock::acquire(&other).unwrap();
        let err = refused(&db);
        assert!(err.contains(&db.display().to_string()), "{err}");
    }

    #[test]
    fn a_second_lock_through_a_symlinked_directory_is_refused_naming_the_real_file() {
        let (dir, db) = database();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path().join("real"), &linked).unwrap();
        let _first = RunLock::acquire(&db).unwrap();
        let through = linked.join("recon.sqlite3");
        let err = refused(&through);
        let real = std::fs::canonicalize(&db).unwrap();
        assert!(
            err.contains(&format!("the file {}", real.display())),
            "{err}"
        );
    }

    #[test]
    fn a_lock_taken_through_a_symlink_is_released_on_drop() {
        let (dir, db) = database();
        let alias = dir.path().join("alias.sqlite3");
        std::os::unix::fs::symlink(&db, &alias).unwrap();
        let first = RunLock::acquire(&alias).unwrap();
        refused(&db);
        drop(first);
        let again = RunLock::acquire(&db).unwrap();
        drop(again);
        RunLock::acquire(&alias).unwrap();
    }
}
