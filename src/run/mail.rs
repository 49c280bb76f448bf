//! Which mail the run's report is: reads what [`mail_plan`] needs from the store (the
//! last digest, the urgent items already mailed, how long runs have been failing) and
//! hands back the decision with the lines the mail leads with.

use chrono::{DateTime, Utc};

use super::{RunStatus, RunSummary};
use crate::config::Settings;
use crate::report::Report;
use crate::report::mail_plan::{self, Mail, MailFacts, UrgentItem};
use crate::store::{AlertKey, MailSent, SharedStore, outage_key};

/// The run's mail, and what it names.
pub(super) struct MailPlan {
    pub mail: Mail,
    /// Urgent items (and an outage) no earlier mail named: recorded once the mail is
    /// queued, so that each is mailed as urgent once.
    pub named: Vec<AlertKey>,
    /// The lines the mail leads with.
    pub lines: Vec<String>,
    /// The urgent items among them (the outage line is not one).
    pub items: Vec<UrgentItem>,
}

impl MailPlan {
    pub fn sent(&self) -> Option<MailSent> {
        match self.mail {
            Mail::Full => Some(MailSent::Full),
            Mail::Urgent => Some(MailSent::Urgent),
            Mail::Nothing => None,
        }
    }
}

pub(super) fn plan(
    settings: &Settings,
    db: &SharedStore,
    run_id: i64,
    report: &Report,
    summary: &RunSummary,
    now: DateTime<Utc>,
) -> anyhow::Result<MailPlan> {
    let Some(email) = &settings.email else {
        return Ok(MailPlan {
            mail: Mail::Nothing,
            named: Vec::new(),
            lines: Vec::new(),
            items: Vec::new(),
        });
    };
    let store = db.lock();
    let items = mail_plan::urgent_items(report, &report.blocking);
    let keys: Vec<AlertKey> = items
        .iter()
        .map(|i| AlertKey {
            kind: i.kind.to_owned(),
            item_id: i.id.clone(),
            reason: i.reason.to_owned(),
        })
        .collect();
    let seen = store.already_alerted(&keys)?;
    let (mut named, mut items): (Vec<AlertKey>, Vec<UrgentItem>) = keys
        .into_iter()
        .zip(items)
        .filter(|(k, _)| !seen.contains(k))
        .unzip();
    let mut lines: Vec<String> = items.iter().map(|i| i.line.clone()).collect();

    // A stopped run is no sign of an outage: it neither starts nor extends an alert
    // (the next run that fails or completes says how things stand).
    let failing = match summary.status {
        RunStatus::Completed | RunStatus::Stopped => None,
        _ => store.failing_since(run_id)?,
    };
    let outage = match &failing {
        Some(f) => {
            let key = outage_key(f.first_run);
            let alerted = !store
                .already_alerted(std::slice::from_ref(&key))?
                .is_empty();
            mail_plan::outage_alert(Some(f.since), alerted, email.alert_after, now)
                .then_some((key, f))
        }
        None => None,
    };
    let new_urgent = named.len();
    if let Some((key, f)) = outage {
        lines.push(format!(
            "no run has completed since run {} started at {}: see `cp-recon status` and the runs table",
            f.first_run,
            crate::report::timestamp(f.since)
        ));
        named.push(key);
    }
    let last_digest = store.last_digest_at()?;
    let digest_due = email
        .digest
        .as_ref()
        .is_some_and(|d| mail_plan::digest_due(d, settings.schedule.timezone, last_digest, now));
    let mail = mail_plan::decide(&MailFacts {
        policy: settings.reports.send,
        needs_attention: report.needs_attention(),
        sync_complete: summary.sync_complete,
        digest_due,
        new_urgent,
        outage_alert: named.len() > new_urgent,
    });
    if mail == Mail::Nothing {
        lines.clear();
        named.clear();
        items.clear();
    }
    Ok(MailPlan {
        mail,
        named,
        lines,
        items,
    })
}
