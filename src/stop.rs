//! A request to stop a run (SIGTERM, SIGINT), shared by the signal handler that makes
//! it, the run that ends at its next safe point, and the API client, which starts no
//! request once it is made, stops every wait at once, and gives a reconcile call in
//! flight [`CALL_GRACE`] to answer before it abandons it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long a reconcile call already sent may take to answer once a stop is requested;
/// after it the call is abandoned, its intent left for the next run to settle, as after
/// a kill. A provider in good health answers a call in well under a second, so a call
/// answered normally is still recorded; a provider that holds calls or is gone costs a
/// stop at most this long. It is far below the units' `TimeoutStopSec` (120 s for the
/// daemon, systemd's default 90 s for the timer's service): the rest of the stop (the
/// report written, the run recorded) fits in the margin, and systemd never needs to
/// kill the process.
pub const CALL_GRACE: Duration = Duration::from_secs(5);

/// Clones share one request; the first reason given is kept.
#[derive(Debug, Clone)]
pub struct Stop(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Why, and when the request was made.
    asked: OnceLock<(String, Instant)>,
    /// Flips to `true` once, when the request is made; waiters watch it.
    flag: watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Self(Arc::new(Inner {
            asked: OnceLock::new(),
            flag: watch::channel(false).0,
        }))
    }
}

impl Stop {
    /// Asks the run to stop; `why` says what asked.
    pub fn request(&self, why: &str) {
        if self.0.asked.set((why.to_owned(), Instant::now())).is_ok() {
            self.0.flag.send_replace(true);
        }
    }

    /// What asked the run to stop, once something has.
    pub fn requested(&self) -> Option<&str> {
        self.0.asked.get().map(|(why, _)| why.as_str())
    }

    /// Resolves once a stop is requested (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.0.flag.subscribe();
        // The sender lives as long as `self`, so the channel never closes under us.
        let _ = rx.wait_for(|asked| *asked).await;
    }

    /// Resolves `grace` after the stop was requested (at once if that time has passed).
    pub async fn grace_over(&self, grace: Duration) {
        self.wait().await;
        if let Some((_, at)) = self.0.asked.get() {
            tokio::time::sleep_until(*at + grace).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_stop_is_requested_and_the_first_reason_is_kept() {
        let stop = Stop::default();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.wait().await }
        });
        assert_eq!(stop.requested(), None);
        stop.request("SIGTERM received");
        stop.request("SIGINT received");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter wakes")
            .unwrap();
        assert_eq!(stop.requested(), Some("SIGTERM received"));
        // Already requested: resolves at once.
        tokio::time::timeout(Duration::from_secs(5), stop.wait())
            .await
            .expect("resolves at once");
    }

    #[tokio::test]
    async fn the_grace_counts_from_the_request() {
        let stop = Stop::default();
        let never = Duration::from_secs(3600);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stop.grace_over(Duration::ZERO))
                .await
                .is_err(),
            "no grace runs out before a stop is requested"
        );
        stop.request("SIGTERM received");
        tokio::time::timeout(Duration::from_secs(5), stop.grace_over(Duration::ZERO))
            .await
            .expect("a grace that has passed is over at once");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stop.grace_over(never))
                .await
                .is_err()
        );
    }
}
