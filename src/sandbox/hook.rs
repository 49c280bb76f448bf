//! A test's hand inside the sandbox: a [`Hook`] sees every list page, payment read and
//! reconcile call before it is served, may change the provider's state right then
//! (a back-dated booking, a person reconciling in the back office, a payment that
//! vanishes) and decides how the request is answered (served, failed, its answer lost,
//! rate-limited). [`Handle::judge`] is the oracle: whether a pair is a confident match
//! by the matching rules on the sandbox's own data, which holds the whole truth.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::data::{PaymentRecord, TransactionRecord};
pub use super::shared::{Action, Event, Handle, Hook};
use super::shared::{lock, read, write};
use super::store::{ListKind, ListQuery, clamped};
use super::{ListName, SandboxError};
use crate::domain::Direction;

/// Parameters of the oracle's rules (matching rules §3.3).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub booking_tolerance: Duration,
    pub lookback: Duration,
}

/// Where a run starts, for the oracle ([`Handle::mark`]): what the job could have read
/// in that run is judged from here on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Records added so far ([`Handle::added`]).
    pub added: u64,
    /// Narrow reads (the first page of one account's list for one microsecond) served so
    /// far.
    pub narrow_reads: usize,
}

fn kind(list: ListName) -> ListKind {
    match list {
        ListName::Payments => ListKind::Payments,
        ListName::Rampoffs => ListKind::Rampoffs,
        ListName::Transactions => ListKind::Transactions,
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            booking_tolerance: Duration::hours(24),
            lookback: Duration::days(90),
        }
    }
}

impl Handle {
    pub fn payment(&self, id: &str) -> Option<PaymentRecord> {
        read(&self.0.state).payments.get(id).map(|r| r.rec.clone())
    }

    pub fn transaction(&self, id: &str) -> Option<TransactionRecord> {
        read(&self.0.state).txs.get(id).map(|r| r.rec.clone())
    }

    /// Every payment and transaction, with when each was added (0: generated).
    pub fn snapshot(&self) -> (Vec<PaymentRecord>, Vec<TransactionRecord>) {
        let s = read(&self.0.state);
        let mut p: Vec<_> = s.payments.values().map(|r| r.rec.clone()).collect();
        let mut t: Vec<_> = s.txs.values().map(|r| r.rec.clone()).collect();
        p.sort_by(|a, b| a.id.cmp(&b.id));
        t.sort_by(|a, b| a.id.cmp(&b.id));
        (p, t)
    }

    pub fn add_payment(&self, p: PaymentRecord) -> Result<(), SandboxError> {
        write(&self.0.state).add_payment(p)
    }

    pub fn add_transaction(&self, t: TransactionRecord) -> Result<(), SandboxError> {
        write(&self.0.state).add_transaction(t)
    }

    /// A person reconciles in the back office: the payment becomes `payment_received`
    /// and the transaction names it. False (nothing changed) unless the payment is
    /// `pending_bank` and the transaction an unreconciled credit.
    pub fn reconcile_by_hand(&self, payment: &str, transaction: &str) -> bool {
        let mut s = write(&self.0.state);
        let ok = s
            .payments
            .get(payment)
            .is_some_and(|p| p.rec.status == "pending_bank")
            && s.txs.get(transaction).is_some_and(|t| {
                t.rec.direction == Direction::Credit && t.rec.reconciled_payment_id.is_none()
            });
        if !ok {
            return false;
        }
        s.set_payment_status(payment, "payment_received", Utc::now());
        if let Some(row) = s.txs.get_mut(transaction) {
            row.rec.reconciled_payment_id = Some(payment.to_owned());
            row.touch();
        }
        true
    }

    /// The provider forgets a payment (it answers `payment_not_found` from then on).
    pub fn remove_payment(&self, id: &str) -> bool {
        write(&self.0.state).remove_payment(id)
    }

    /// The bank removes a booking (a reversal): the transaction is no longer listed.
    pub fn remove_transaction(&self, id: &str) -> bool {
        write(&self.0.state).remove_transaction(id)
    }

    /// A back-office correction re-dates a booking: it moves to `booked_at` in its
    /// account's list, possibly behind a page a client already read.
    pub fn redate_transaction(&self, id: &str, booked_at: DateTime<Utc>) -> bool {
        write(&self.0.state).redate_transaction(id, booked_at)
    }

    /// A payment's creation instant changes: it moves in the payments list.
    pub fn redate_payment(&self, id: &str, created_at: DateTime<Utc>) -> bool {
        write(&self.0.state).redate_payment(id, created_at)
    }

    /// How many `GET /payment/{id}` requests are being served right now (a hook sees
    /// its own request counted).
    pub fn payment_reads_now(&self) -> u64 {
        self.0
            .payment_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The most `GET /payment/{id}` requests the sandbox has served at once.
    pub fn max_payment_reads_at_once(&self) -> u64 {
        self.0
            .max_payment_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many records were added so far.
    pub fn added(&self) -> u64 {
        read(&self.0.state).added
    }

    /// Where a run starts, for [`Handle::judge`]: take it right before the run.
    pub fn mark(&self) -> Mark {
        let narrow_reads = lock(&self.0.narrow_reads).len();
        Mark {
            added: self.added(),
            narrow_reads,
        }
    }

    /// A provider that sends a field of the wrong type: from now on the item `id` of
    /// `list` is served with `field` set to `value` (whatever its type; added if the item
    /// has no such field), in its list and, for a payment, in `GET /payment/{id}`. The
    /// record itself does not change. False if there is no such item.
    pub fn set_wire_override(
        &self,
        list: ListName,
        id: &str,
        field: &str,
        value: serde_json::Value,
    ) -> bool {
        write(&self.0.state).set_wire_override(kind(list), id, field, Some(value))
    }

    /// The item `id` of `list` is served with `field` as its record says again. False if
    /// there is no such item.
    pub fn clear_wire_override(&self, list: ListName, id: &str, field: &str) -> bool {
        write(&self.0.state).set_wire_override(kind(list), id, field, None)
    }

    /// The ids of the items a list request would be served if it were answered now
    /// (`per_page` clamped as the provider's faults say); empty for any other request.
    /// A hook calls it to know what a client is about to receive.
    pub fn would_serve(&self, event: &Event) -> Vec<String> {
        let Event::List {
            list,
            iban,
            from,
            to,
            page,
            per_page,
            status,
        } = event
        else {
            return Vec::new();
        };
        let q = ListQuery {
            page: *page,
            per_page: *per_page,
            from: from.map(|t| t.timestamp_micros()),
            to: to.map(|t| t.timestamp_micros()),
            status: status.clone(),
        };
        let q = clamped(&read(&self.0.faults), q);
        if q.status.is_some() && read(&self.0.state).status_index_stale() {
            write(&self.0.state).refresh_status_index();
        }
        read(&self.0.state)
            .page_ids(kind(*list), &q, iban)
            .iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// The oracle: whether (payment, transaction) is a confident match by the matching
    /// rules (§2–§3) on the sandbox's data now, counting as competitors the records the
    /// job could have read in the run that started at `since` (from [`Handle::mark`]).
    /// `Err` says which rule fails. A second, deliberately plain implementation of the
    /// rules: a scan of everything, characters decoded, no index.
    ///
    /// Records are judged as they are now: a removed one competes with nothing (it is
    /// gone), a re-dated one competes at its new instant. A competitor counts when:
    ///
    /// - it existed when the run started (generated, or added up to `since.added`): the
    ///   run's reads must hold it, however the lists moved while they were read (§5);
    /// - it is a credit booked on the matched credit's account at the matched credit's
    ///   instant, and it was there when the run's first narrow read of that instant (the
    ///   re-read before the call, §3.6) was answered: that read returned it. (The first
    ///   one, because calls of one batch overlap the next batch's re-reads: a later narrow
    ///   read of the same instant may be another pair's, answered after this call's.)
    ///
    /// Any other record added during the run is forgiven: the job's list reads may miss
    /// an item inserted while they page, behind their cursor (API §13.2), and a complete
    /// read need only hold the items that existed from its start to its end (§5). Such an
    /// item is not lost: the next run's window reads it, and this oracle judges that
    /// run's calls with it. How the job catches inserts behind its cursor is tested in
    /// `tests/client` (`a_list_read_while_pages_shift_loses_nothing_and_repeats_nothing`),
    /// `tests/cli` (`a_run_through_rate_limits_outages_token_expiry_and_shifting_pages_…`)
    /// and `src/api/paging.rs`; the simulation's last, calm run checks that every open
    /// item was read and reported.
    pub fn judge(
        &self,
        payment: &str,
        transaction: &str,
        since: Mark,
        now: DateTime<Utc>,
        rules: Rules,
    ) -> Result<(), String> {
        let s = read(&self.0.state);
        let p = &s.payments.get(payment).ok_or("unknown payment")?.rec;
        let t = &s.txs.get(transaction).ok_or("unknown transaction")?.rec;
        let instant = t.booked_at.timestamp_micros();
        let reread = lock(&self.0.narrow_reads)
            .iter()
            .skip(since.narrow_reads)
            .find(|n| n.iban == t.iban && n.at == instant)
            .map(|n| n.added);
        let added = |id: &str| s.added_seq.get(id).copied();
        let existed = |id: &str| added(id).is_none_or(|n| n <= since.added);
        let reread_returned = |id: &str, other: &TransactionRecord| {
            other.iban == t.iban
                && other.booked_at.timestamp_micros() == instant
                && reread.is_some_and(|r| added(id).is_none_or(|n| n <= r))
        };
        let open_payment = |p: &PaymentRecord| p.status == "pending_bank";
        let open_credit = |t: &TransactionRecord| {
            t.direction == Direction::Credit && t.reconciled_payment_id.is_none()
        };
        if !open_payment(p) {
            return Err(format!("payment is {}", p.status));
        }
        if !open_credit(t) {
            return Err("transaction is not an open credit".into());
        }
        let fits = |p: &PaymentRecord, t: &TransactionRecord| -> Result<(), String> {
            let concept = p.concept.ok_or("payment has no concept")?.to_string();
            if !contains_concept(&t.concept, &concept) {
                return Err(format!("concept {concept} not in {:?}", t.concept));
            }
            if Decimal::new(p.fiat_cents, 2) != t.amount || p.fiat_symbol != t.currency {
                return Err("amount or currency differs".into());
            }
            if t.booked_at < p.created_at - rules.booking_tolerance {
                return Err("booked too early".into());
            }
            if p.created_at < now - rules.lookback {
                return Err("payment outside the look-back window".into());
            }
            Ok(())
        };
        fits(p, t)?;
        for (id, other) in &s.payments {
            if **id == *payment || !open_payment(&other.rec) || !existed(id) {
                continue;
            }
            if let Some(c) = other.rec.concept
                && contains_concept(&t.concept, &c.to_string())
            {
                return Err(format!("the text also names open payment {id}"));
            }
        }
        for (id, other) in &s.txs {
            if **id == *transaction
                || !open_credit(&other.rec)
                || !(existed(id) || reread_returned(id, &other.rec))
            {
                continue;
            }
            if fits(p, &other.rec).is_ok() {
                let how = if existed(id) {
                    "it was there when the run started"
                } else {
                    "the re-read of the instant returned it"
                };
                return Err(format!("open credit {id} fits the payment too ({how})"));
            }
        }
        Ok(())
    }
}

/// Rules §2, read character by character: `concept` appears in `text` with no digit of
/// any script right before or after it.
pub fn contains_concept(text: &str, concept: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let want: Vec<char> = concept.chars().collect();
    if want.is_empty() || chars.len() < want.len() {
        return false;
    }
    (0..=chars.len() - want.len()).any(|i| {
        chars[i..i + want.len()] == want[..]
            && (i == 0 || !chars[i - 1].is_numeric())
            && chars.get(i + want.len()).is_none_or(|c| !c.is_numeric())
    })
}
