//! Report folders on disk: never overwritten by a run that did not write them (a database
//! restored from a backup hands out run ids again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::helpers::{TestEnv, code, scalar, text};

/// Every report folder under `reports` (hidden staging folders left out), by name.
fn report_folders(reports: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(reports)
        .expect("the reports directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect()
}

/// Every file of a folder, by name, with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_from_a_backup_leaves_the_report_folders_written_since_intact() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::start(crate::small()).await;
    let first = env.run(&["--run-now"]).await;
    assert_eq!(code(&first), 0, "{}", text(&first));
    // Yesterday's backup: the database as run 1 left it.
    let backup = env.db.with_file_name("backup.sqlite3");
    std::fs::copy(&env.db, &backup).unwrap();
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    assert!(!wal(&env.db).exists(), "the run left a WAL behind");

    let second = env.run(&["--run-now"]).await;
    assert_eq!(code(&second), 0, "{}", text(&second));
    let before = report_folders(&env.reports);
    assert_eq!(before.len(), 2, "{before:#?}");
    let (name, dir) = before.iter().next_back().unwrap();
    let inode = std::fs::metadata(dir).unwrap().ino();
    let files = contents(dir);
    assert!(files.contains_key("reconciled.csv"), "{files:?}");

    // The backup put in place, as the README advises for a damaged file: the next run
    // is numbered 2 again.
    std::fs::copy(&backup, &env.db).unwrap();
    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{extra}", env.db.display()));
    }
    let third = env.run(&["--run-now"]).await;
    assert_eq!(code(&third), 0, "{}", text(&third));
    assert_eq!(
        scalar::<i64>(&env.store(), "SELECT MAX(run_id) FROM reports"),
        2,
        "the restored database numbered the run again"
    );

    let after = report_folders(&env.reports);
    assert_eq!(after.len(), 3, "{after:#?}");
    let kept = after
        .get(name)
        .unwrap_or_else(|| panic!("{name} is gone: {after:#?}"));
    assert_eq!(
        std::fs::metadata(kept).unwrap().ino(),
        inode,
        "{name} was replaced"
    );
    assert!(contents(kept) == files, "the files of {name} changed");
}
