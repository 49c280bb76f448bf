//! Suggestions for a credit without a concept: the open payments of exactly its money
//! (rules §4). A hint for a person, never acted on.

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use super::{PaymentInfo, currency_code};
use crate::domain::{Money, Payment};

/// At most this many same-amount payments are suggested for a `no_concept` credit: a hint
/// for a person, not a list to work through.
const MAX_SUGGESTED: usize = 5;

/// Money as a hashable key that compares exactly like [`Money::same_as`]: the currency,
/// and the amount without trailing zeros (`150.5` and `150.50` are the same key).
type MoneyKey = (u64, i128, u32);

pub(super) fn money_key(currency: u64, amount: Decimal) -> MoneyKey {
    let n = amount.normalize();
    (currency, n.mantissa(), n.scale())
}

/// For each wanted amount, the open payments of exactly that money, lowest ids first, at
/// most [`MAX_SUGGESTED`]. One sequential pass over the payments; only the amounts asked
/// for are kept.
pub(super) fn same_money<'m>(
    payments: &[Payment],
    infos: &[PaymentInfo],
    wanted: impl Iterator<Item = &'m Money>,
) -> FxHashMap<MoneyKey, Vec<usize>> {
    let mut found: FxHashMap<MoneyKey, Vec<usize>> = wanted
        .map(|m| (money_key(currency_code(m), m.amount()), Vec::new()))
        .collect();

    // Normalising a million amounts would cost more than the rest of the scan. Instead,
    // each wanted amount is written out at every scale the payments use (`150.5` as
    // 15050 at scale 2), and each payment is looked up as it is stored.
    let scales = infos
        .iter()
        .filter(|info| info.open && !info.in_doubt)
        .fold(0u32, |mask, info| mask | 1 << info.amount.scale());
    let mut as_stored: FxHashMap<MoneyKey, MoneyKey> = FxHashMap::default();
    for &(currency, mantissa, scale) in found.keys() {
        for stored_scale in scale..=Decimal::MAX_SCALE {
            if scales & (1 << stored_scale) == 0 {
                continue;
            }
            let widened = 10i128
                .checked_pow(stored_scale - scale)
                .and_then(|factor| mantissa.checked_mul(factor))
                .filter(|m| m.unsigned_abs() < 1 << 96);
            // A longer mantissa than a decimal holds: no payment can be stored so.
            let Some(widened) = widened else { break };
            as_stored.insert(
                (currency, widened, stored_scale),
                (currency, mantissa, scale),
            );
        }
    }

    for (pi, info) in infos.iter().enumerate() {
        if !info.open || info.in_doubt {
            continue;
        }
        let stored = (info.currency, info.amount.mantissa(), info.amount.scale());
        let Some(best) = as_stored.get(&stored).and_then(|key| found.get_mut(key)) else {
            continue;
        };
        let id = &payments[pi].id;
        // Keep the lowest ids, sorted; the lists are tiny.
        let at = best.partition_point(|&other| payments[other].id < *id);
        if at < MAX_SUGGESTED {
            best.insert(at, pi);
            best.truncate(MAX_SUGGESTED);
        }
    }
    found
}
