//! Whether another run's reconcile call may still be on its way to the provider.
//!
//! On a database that several hosts share, a host can lose its session (the database
//! restarted, the network was cut) after committing an intent and before, or while,
//! sending its call: the call can still reach the provider after another host has taken
//! the run lock. If that other host's recovery re-read the payment at once, it could
//! find it still pending, release the pair, and call it again: two hosts calling one
//! pair. So recovery leaves such an intent in doubt, holding its payment and its credit,
//! until it is older than the longest its call can take to reach the provider and be
//! answered: [`CallLimits::bound`]. Ages are taken on the database's clock, the one
//! clock the hosts share (the intent's `written_at` and the server's `now`).
//!
//! Pure: the limits and both instants are passed in.

use chrono::{DateTime, Duration, Utc};

/// What bounds one reconcile call of the API client, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The whole-request timeout of one attempt.
    pub timeout: std::time::Duration,
    /// Attempts of one request (a call is retried only while it surely was not sent).
    pub attempts: u32,
    /// The backoff before attempt `n + 1` is at most `min(cap, base · 2^(n-1))`.
    pub backoff_base: std::time::Duration,
    pub backoff_cap: std::time::Duration,
    /// The longest a request can wait for a pacing slot (concurrency / rate), if paced.
    pub pacing: std::time::Duration,
}

/// Slack for the scheduling between the intent's commit and the first attempt.
const SLACK: Duration = Duration::seconds(5);

impl CallLimits {
    /// The longest from an intent's commit to the last moment its call can reach the
    /// provider: a login and the call, each with all its attempts and the backoffs
    /// between them, a pacing wait before each, and [`SLACK`].
    pub fn bound(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let mut one = self.timeout.saturating_mul(attempts) + self.pacing;
        for n in 1..attempts {
            let exp = self
                .backoff_base
                .saturating_mul(1u32 << (n - 1).min(16))
                .min(self.backoff_cap);
            one = one.saturating_add(exp);
        }
        Duration::from_std(one.saturating_mul(2)).unwrap_or(Duration::MAX) + SLACK
    }
}

/// Until when an intent written at `written_at` (by the database's clock) may still
/// have its call on its way, when that is after `now` (the database's clock too);
/// `None` when it cannot any more. An intent written before the database recorded
/// when (an older schema) is taken as old: it was written before this version ran.
pub fn in_flight_until(
    written_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    bound: Duration,
) -> Option<DateTime<Utc>> {
    let until = written_at?.checked_add_signed(bound)?;
    (until > now).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    fn limits(timeout: u64, attempts: u32) -> CallLimits {
        CallLimits {
            timeout: Std::from_secs(timeout),
            attempts,
            backoff_base: Std::from_millis(500),
            backoff_cap: Std::from_secs(30),
            pacing: Std::from_secs(1),
        }
    }

    #[test]
    fn the_bound_covers_a_login_and_the_call_with_every_attempt_and_backoff() {
        // One attempt: (timeout + pacing) twice, plus the slack.
        assert_eq!(limits(30, 1).bound(), Duration::seconds(2 * 31 + 5));
        // Four attempts: 4 × 30 s, the backoffs 0.5 + 1 + 2 s, one pacing wait; twice.
        assert_eq!(
            limits(30, 4).bound(),
            Duration::milliseconds(2 * (120_000 + 3_500 + 1_000)) + Duration::seconds(5)
        );
        // The backoff is capped.
        let mut l = limits(1, 12);
        l.backoff_base = Std::from_secs(20);
        assert_eq!(
            l.bound(),
            Duration::seconds(2 * (12 + 20 + 30 * 10 + 1) + 5)
        );
    }

    #[test]
    fn an_intent_is_in_flight_until_the_bound_has_passed_by_the_database_s_clock() {
        let t0: DateTime<Utc> = "2026-12-06T06:00:00Z".parse().unwrap();
        let bound = Duration::seconds(67);
        let until = t0 + bound;
        assert_eq!(in_flight_until(Some(t0), t0, bound), Some(until));
        assert_eq!(
            in_flight_until(Some(t0), until - Duration::milliseconds(1), bound),
            Some(until)
        );
        assert_eq!(in_flight_until(Some(t0), until, bound), None);
        assert_eq!(
            in_flight_until(Some(t0), until + Duration::hours(1), bound),
            None
        );
        // Written before the database recorded when: old.
        assert_eq!(in_flight_until(None, t0, bound), None);
    }
}
