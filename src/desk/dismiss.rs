//! Whether a dismiss or a reopen does anything, and which item an id names. Pure.

use super::{Action, Decision, ItemRef, Refusal};

/// What a dismiss or reopen comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write the decision.
    Record,
    /// Already so: nothing to write (the same decision applied twice does nothing).
    Nothing(String),
}

/// The item an id names, among those the store found with it (a payment, a bank
/// transaction, an off-ramp, an unreadable record). Refused when none or several.
pub fn resolve(id: &str, found: Vec<ItemRef>) -> Result<ItemRef, Refusal> {
    let mut found = found;
    found.sort();
    found.dedup();
    match found.len() {
        0 => Err(Refusal::UnknownItem(id.to_owned())),
        1 => Ok(found.remove(0)),
        _ => Err(Refusal::AmbiguousItem {
            id: id.to_owned(),
            kinds: found
                .iter()
                .map(ItemRef::kind)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Whether `action` (dismiss or reopen) on `item` changes anything, given the dismissal
/// in force on it (if any). A dismiss needs a note; a reopen's is optional.
pub fn check(
    action: Action,
    item: &ItemRef,
    by: &str,
    note: Option<&str>,
    in_force: Option<&Decision>,
) -> Result<Change, Refusal> {
    if by.trim().is_empty() {
        return Err(Refusal::NobodyDecides);
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    match (action, in_force) {
        (Action::Dismiss, _) if note.is_none() => Err(Refusal::NoteRequired(item.clone())),
        (Action::Dismiss, Some(d)) => Ok(Change::Nothing(format!(
            "{item} is already dismissed (by {} on {})",
            d.by,
            d.at.format("%Y-%m-%d %H:%M UTC")
        ))),
        (Action::Reopen, None) => Ok(Change::Nothing(format!("{item} is not dismissed"))),
        _ => Ok(Change::Record),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{BankTxId, PaymentId};

    fn p1() -> ItemRef {
        ItemRef::Payment(PaymentId::parse("P1").unwrap())
    }

    fn dismissal() -> Decision {
        Decision {
            id: 1,
            at: Utc::now(),
            by: "ana".into(),
            action: Action::Dismiss,
            item: p1(),
            other: None,
            note: Some("test payment".into()),
            source: "cli".into(),
            run_id: None,
            match_id: None,
            outcome: Some("dismissed".into()),
        }
    }

    #[test]
    fn a_dismiss_without_a_note_is_refused() {
        for note in [None, Some(""), Some("   ")] {
            assert_eq!(
                check(Action::Dismiss, &p1(), "ana", note, None),
                Err(Refusal::NoteRequired(p1()))
            );
        }
    }

    #[test]
    fn a_decision_needs_someone_to_make_it() {
        assert_eq!(
            check(Action::Reopen, &p1(), " ", None, Some(&dismissal())),
            Err(Refusal::NobodyDecides)
        );
    }

    #[test]
    fn dismissing_twice_or_reopening_what_is_open_does_nothing() {
        let d = dismissal();
        assert!(matches!(
            check(Action::Dismiss, &p1(), "bo", Some("fee"), Some(&d)),
            Ok(Change::Nothing(s)) if s.contains("ana")
        ));
        assert!(matches!(
            check(Action::Reopen, &p1(), "bo", None, None),
            Ok(Change::Nothing(_))
        ));
        assert_eq!(
            check(Action::Dismiss, &p1(), "bo", Some("fee"), None),
            Ok(Change::Record)
        );
        assert_eq!(
            check(Action::Reopen, &p1(), "bo", None, Some(&d)),
            Ok(Change::Record)
        );
    }

    #[test]
    fn an_id_names_one_item_or_is_refused() {
        assert_eq!(resolve("P1", vec![p1(), p1()]), Ok(p1()));
        assert_eq!(resolve("X", vec![]), Err(Refusal::UnknownItem("X".into())));
        let both = vec![p1(), ItemRef::Transaction(BankTxId::parse("P1").unwrap())];
        assert!(matches!(
            resolve("P1", both),
            Err(Refusal::AmbiguousItem { .. })
        ));
    }
}
