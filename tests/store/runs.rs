//! Runs, the lists each run read, and the watermarks.

use cp_recon::store::RunEnd;

use crate::{at, each_backend};

#[test]
fn a_run_is_recorded_running_then_with_how_it_ended() {
    each_backend("a run is recorded", |s| {
        let run = s.begin_run(at(0), false, "full").unwrap();
        let row = s.run(run).unwrap().unwrap();
        assert_eq!((row.outcome.as_str(), row.finished_at), ("running", None));
        s.finish_run(
            run,
            at(1),
            &RunEnd {
                outcome: "completed".into(),
                sync_complete: true,
                ..RunEnd::default()
            },
        )
        .unwrap();
        let row = s.run(run).unwrap().unwrap();
        assert_eq!(row.outcome, "completed");
        assert!(row.sync_complete);
        assert_eq!(
            row.finished_at.as_deref(),
            Some("2026-12-06T06:01:00.000000Z")
        );
    });
}
