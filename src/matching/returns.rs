//! Returns: debits that send back the money of a payment this job reconciled (rules §4,
//! second table, `returned_after_reconcile`). The crypto was released against that
//! credit; money leaving again for it is urgent, whatever else the debit might be.

use rustc_hash::FxHashMap;

use super::index::concept_runs;
use super::{Decisions, Reason, TransactionFinding};
use crate::domain::{BankTransaction, BankTxId, Concept, Money, PaymentId};

/// A payment this job tied to a credit (a `reconciled` row of the ledger), as the
/// return check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciledPair {
    pub payment: PaymentId,
    pub transaction: BankTxId,
    /// The payment's concept, if it had one.
    pub concept: Option<Concept>,
    /// The payment's amount (equal to the credit's: the pair was confident).
    pub amount: Money,
}

/// Reports each debit that returns a reconciled payment's money, and gives back the
/// other debits, in their order, for the payout matching.
///
/// A debit returns a reconciled pair when its text contains the pair's concept (§2:
/// the same digit runs as for credits, a digit of any script next to it breaks it) or
/// the pair's credit id as a whole alphanumeric token (as an off-ramp id is found in a
/// payout), and its amount and currency are the pair's. Such a debit is never taken as
/// an off-ramp's payout, even if it also carries one's id: that would explain the money
/// away.
pub(super) fn find_returns<'a>(
    debits: Vec<&'a BankTransaction>,
    reconciled: &[ReconciledPair],
    decisions: &mut Decisions,
) -> Vec<&'a BankTransaction> {
    if reconciled.is_empty() || debits.is_empty() {
        return debits;
    }
    let mut by_concept: FxHashMap<&[u8], Vec<usize>> = FxHashMap::default();
    let mut by_credit: FxHashMap<&[u8], Vec<usize>> = FxHashMap::default();
    for (i, r) in reconciled.iter().enumerate() {
        if let Some(c) = &r.concept {
            by_concept.entry(c.as_str().as_bytes()).or_default().push(i);
        }
        by_credit
            .entry(r.transaction.as_str().as_bytes())
            .or_default()
            .push(i);
    }

    let mut rest = Vec::with_capacity(debits.len());
    for d in debits {
        let text = d.concept_text.as_str();
        let mut returned: Vec<&ReconciledPair> = concept_runs(text)
            .filter_map(|run| by_concept.get(run))
            .chain(alphanumeric_tokens(text.as_bytes()).filter_map(|token| by_credit.get(token)))
            .flatten()
            .map(|&i| &reconciled[i])
            .filter(|r| r.amount.same_as(&d.amount))
            .collect();
        if returned.is_empty() {
            rest.push(d);
            continue;
        }
        returned.sort_by(|a, b| a.payment.cmp(&b.payment));
        returned.dedup_by(|a, b| a.payment == b.payment);
        let detail = returned
            .iter()
            .map(|r| {
                format!(
                    "returns {} of payment {} (concept {}), reconciled with credit {}",
                    r.amount,
                    r.payment,
                    r.concept.as_ref().map_or("none", Concept::as_str),
                    r.transaction
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        decisions.transactions.push(TransactionFinding {
            transaction: d.id.clone(),
            reason: Reason::ReturnedAfterReconcile,
            candidates: returned.iter().map(|r| r.payment.clone()).collect(),
            suggested: Vec::new(),
            difference: None,
            detail: Some(detail),
        });
    }
    rest
}

/// Maximal runs of ASCII letters and digits. Runs of ASCII classes never split a UTF-8
/// character: bytes of multibyte characters are all ≥ 0x80 and never ASCII.
pub(super) fn alphanumeric_tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| !b.is_ascii_alphanumeric())
        .filter(|run| !run.is_empty())
}
