//! Payouts: which debits pay out which finished off-ramps, and which debits and
//! off-ramps are left over (rules §4, second table).

use chrono::{DateTime, Duration, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Decisions, PayoutFinding, PayoutMatch, Reason, TransactionFinding, whole_days};
use crate::domain::{BankTransaction, Offramp, OfframpStatus};

/// Rules §4, second table: which debits pay out which finished off-ramps, and what is
/// left over.
///
/// Off-ramp ids are alphanumeric, so an id "appears" in a debit's text when it is a whole
/// token there (a maximal run of ASCII letters and digits): one hash lookup per token.
/// Each off-ramp is paid out at most once; debits are taken oldest first so the first
/// payout is the one kept and a second one is reported — a double payout must reach a
/// person.
pub(super) fn match_debits(
    debits: &[&BankTransaction],
    offramps: &[Offramp],
    now: DateTime<Utc>,
    grace: Duration,
    decisions: &mut Decisions,
) {
    let mut finished: FxHashMap<&[u8], usize> = FxHashMap::default();
    for (oi, o) in offramps.iter().enumerate() {
        if o.status == OfframpStatus::Finished {
            // First occurrence wins, as for every other record.
            finished.entry(o.id.as_str().as_bytes()).or_insert(oi);
        }
    }

    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut ordered: Vec<&BankTransaction> = debits
        .iter()
        .copied()
        .filter(|d| seen.insert(d.id.as_str()))
        .collect();
    ordered.sort_by(|a, b| a.booked_at.cmp(&b.booked_at).then_with(|| a.id.cmp(&b.id)));
    let mut paid = vec![false; offramps.len()];
    for d in ordered {
        let payout = runs(d.concept_text.as_bytes(), u8::is_ascii_alphanumeric)
            .filter_map(|token| finished.get(token).copied())
            .find(|&oi| !paid[oi] && offramps[oi].fiat.same_as(&d.amount));
        match payout {
            Some(oi) => {
                paid[oi] = true;
                decisions.paid_out.push(PayoutMatch {
                    offramp: offramps[oi].id.clone(),
                    transaction: d.id.clone(),
                });
            }
            None => decisions.transactions.push(TransactionFinding {
                transaction: d.id.clone(),
                reason: Reason::UnexplainedDebit,
                candidates: Vec::new(),
                suggested: Vec::new(),
                difference: None,
                detail: None,
            }),
        }
    }
    decisions.paid_out.sort_by(|a, b| a.offramp.cmp(&b.offramp));

    for &oi in finished.values() {
        if paid[oi] {
            continue;
        }
        let o = &offramps[oi];
        // The list gives no finishing time; the last update is when it became finished.
        let finished_at = o.updated_at.unwrap_or(o.created_at);
        if now.signed_duration_since(finished_at) > grace {
            decisions.payouts.push(PayoutFinding {
                offramp: o.id.clone(),
                reason: Reason::PayoutNotSeen,
                days_since_finished: whole_days(finished_at, now),
            });
        }
    }
    decisions.payouts.sort_by(|a, b| a.offramp.cmp(&b.offramp));
}

/// Maximal runs of bytes satisfying `keep`. Runs of ASCII classes never split a UTF-8
/// character: bytes of multibyte characters are all ≥ 0x80 and never ASCII.
fn runs(text: &[u8], keep: fn(&u8) -> bool) -> impl Iterator<Item = &[u8]> {
    text.split(move |b| !keep(b)).filter(|run| !run.is_empty())
}
