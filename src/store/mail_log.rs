//! What each report mailed: the digest's last slot, the urgent items already named, and
//! whether a mail has said that runs are failing (`migrations/0009_mail_log.sql`).

use chrono::{DateTime, Utc};

use crate::store::{RunId, StoreError};

/// An item a mail named as urgent: `kind` (`payment`, `transaction`, `offramp`,
/// `bad_record`, or `outage`), its id, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub kind: String,
    pub item_id: String,
    pub reason: String,
}

/// Which mail a report was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSent {
    Full,
    Urgent,
}

impl MailSent {
    pub(in crate::store) fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Urgent => "urgent",
        }
    }
}

/// Runs that did not complete since the last one that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The first of them.
    pub first_run: RunId,
    pub since: DateTime<Utc>,
}

/// The key that records an outage alert for runs failing since `first_run`.
pub fn outage_key(first_run: RunId) -> AlertKey {
    AlertKey {
        kind: "outage".to_owned(),
        item_id: first_run.to_string(),
        reason: "failing".to_owned(),
    }
}

/// The mail log part of the store's interface (see `store/mod.rs`).
pub trait MailLogStore {
    /// When the last full report (digest) was queued, if ever.
    fn last_digest_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Of `keys`, those an earlier mail already named.
    fn already_alerted(&self, keys: &[AlertKey]) -> Result<Vec<AlertKey>, StoreError>;

    /// Records which mail run `run`'s report was, and the urgent items it named, in one
    /// transaction.
    fn record_mail(
        &mut self,
        run: RunId,
        mail: MailSent,
        named: &[AlertKey],
    ) -> Result<(), StoreError>;

    /// The runs since the last completed one, if `run` is among runs that did not
    /// complete: the first of them and when it started. Approve runs do not count.
    fn failing_since(&self, run: RunId) -> Result<Option<Failing>, StoreError>;
}
