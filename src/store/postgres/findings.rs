//! The findings part of the store on PostgreSQL (`store/findings.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use ::postgres::types::Type;
use chrono::{DateTime, Utc};

use crate::domain::{BankTxId, PaymentId};
use crate::matching::Decisions;
use crate::store::*;

use super::PgStore;

impl FindingStore for PgStore {
    fn insert_findings(&mut self, run: RunId, d: &Decisions) -> Result<(), StoreError> {
        let mut rows = Findings::default();
        for f in &d.payments {
            rows.push(
                "payment",
                f.payment.as_str(),
                f.reason.as_str(),
                join(f.candidates.iter().map(BankTxId::as_str)),
                f.difference.map(|x| x.to_string()),
                f.detail.clone(),
            );
        }
        for f in &d.transactions {
            let ids = if f.candidates.is_empty() {
                &f.suggested
            } else {
                &f.candidates
            };
            rows.push(
                "transaction",
                f.transaction.as_str(),
                f.reason.as_str(),
                join(ids.iter().map(PaymentId::as_str)),
                f.difference.map(|x| x.to_string()),
                f.detail.clone(),
            );
        }
        for f in &d.payouts {
            rows.push(
                "offramp",
                f.offramp.as_str(),
                f.reason.as_str(),
                String::new(),
                None,
                None,
            );
        }
        let rows = rows.last_word_each();
        if rows.kind.is_empty() {
            return Ok(());
        }
        self.in_tx(move |c| {
            c.execute_typed(
                "INSERT INTO findings (run_id, kind, item_id, reason, candidates, difference, detail)
                 SELECT $1, u.kind, u.item_id, u.reason, u.candidates, u.difference, u.detail
                 FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[])
                      AS u (kind, item_id, reason, candidates, difference, detail)",
                &[
                    (&run, Type::INT8),
                    (&rows.kind, Type::TEXT_ARRAY),
                    (&rows.item, Type::TEXT_ARRAY),
                    (&rows.reason, Type::TEXT_ARRAY),
                    (&rows.candidates, Type::TEXT_ARRAY),
                    (&rows.difference, Type::TEXT_ARRAY),
                    (&rows.detail, Type::TEXT_ARRAY),
                ],
            )?;
            Ok(())
        })
    }

    /// One transaction: the report, the reconciles it lists, and which mail it is with
    /// the urgent items it names (the statements of [`MailLogStore::record_mail`]).
    /// Every commit is durable on PostgreSQL.
    fn record_report(&mut self, r: &NewReport<'_>) -> Result<(), StoreError> {
        let run = r.run;
        let dir = r.dir.to_string_lossy().into_owned();
        let state = r.state.to_owned();
        let subject = r.subject.map(str::to_owned);
        let listed = r.listed.to_vec();
        let now = ts(r.now);
        let mail = r.mail.map(|m| m.as_str().to_owned());
        let kinds: Vec<String> = r.named.iter().map(|k| k.kind.clone()).collect();
        let items: Vec<String> = r.named.iter().map(|k| k.item_id.clone()).collect();
        let reasons: Vec<String> = r.named.iter().map(|k| k.reason.clone()).collect();
        self.in_tx(move |c| {
            c.execute_typed(
                "INSERT INTO reports (run_id, dir, state, subject, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    (&run, Type::INT8),
                    (&dir, Type::TEXT),
                    (&state, Type::TEXT),
                    (&subject, Type::TEXT),
                    (&now, Type::TEXT),
                ],
            )?;
            if !listed.is_empty() {
                c.execute_typed(
                    "UPDATE matches SET reported_run = $1
                     WHERE id = ANY($2::BIGINT[]) AND reported_run IS NULL",
                    &[(&run, Type::INT8), (&listed, Type::INT8_ARRAY)],
                )?;
            }
            if let Some(mail) = mail {
                c.execute_typed(
                    "UPDATE reports SET mail = $2 WHERE run_id = $1",
                    &[(&run, Type::INT8), (&mail, Type::TEXT)],
                )?;
                if !kinds.is_empty() {
                    c.execute_typed(
                        "INSERT INTO alerts (kind, item_id, reason, run_id)
                         SELECT u.kind, u.item_id, u.reason, $1
                         FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[])
                              AS u (kind, item_id, reason)
                         ON CONFLICT (kind, item_id, reason) DO NOTHING",
                        &[
                            (&run, Type::INT8),
                            (&kinds, Type::TEXT_ARRAY),
                            (&items, Type::TEXT_ARRAY),
                            (&reasons, Type::TEXT_ARRAY),
                        ],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn mark_report_written(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now = ts(now);
        let n = self.run(move |c| {
            c.execute_typed(
                "UPDATE reports SET written_at = $2 WHERE run_id = $1 AND written_at IS NULL",
                &[(&run, Type::INT8), (&now, Type::TEXT)],
            )
        })?;
        Ok(n == 1)
    }

    fn unwritten_reports(&self) -> Result<Vec<(RunId, PathBuf)>, StoreError> {
        self.run(|c| {
            c.query_typed(
                "SELECT run_id, dir FROM reports WHERE written_at IS NULL ORDER BY run_id",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, PathBuf::from(r.try_get::<_, String>(1)?))))
            .collect()
        })
    }

    fn void_report(&mut self, run: RunId) -> Result<usize, StoreError> {
        let n = self.in_tx(move |c| {
            let gone = c.execute_typed(
                "DELETE FROM reports WHERE run_id = $1 AND written_at IS NULL",
                &[(&run, Type::INT8)],
            )?;
            if gone == 0 {
                return Ok(0);
            }
            c.execute_typed(
                "DELETE FROM alerts WHERE run_id = $1",
                &[(&run, Type::INT8)],
            )?;
            c.execute_typed(
                "UPDATE matches SET reported_run = NULL WHERE reported_run = $1",
                &[(&run, Type::INT8)],
            )
        })?;
        Ok(n as usize)
    }

    fn pending_reports(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.run(|c| {
            c.query_typed(
                "SELECT run_id, dir, attempts FROM reports
                 WHERE state = 'pending' AND written_at IS NOT NULL ORDER BY run_id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    run_id: r.try_get(0)?,
                    dir: PathBuf::from(r.try_get::<_, String>(1)?),
                    attempts: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn undelivered_reports(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let (count, oldest): (i64, Option<String>) = self.run(|c| {
            let r = c.query_typed_one(
                "SELECT COUNT(*), MIN(created_at) FROM reports
                 WHERE state = 'pending' AND written_at IS NOT NULL",
                &[],
            )?;
            Ok((r.try_get(0)?, r.try_get(1)?))
        })?;
        let oldest = oldest
            .map(|s| parse_ts("reports", "created_at", &s))
            .transpose()?;
        Ok((count.max(0) as u64, oldest))
    }

    fn mark_report_sent(&mut self, run: RunId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now = ts(now);
        let n = self.run(move |c| {
            c.execute_typed(
                "UPDATE reports SET state = 'sent', sent_at = $2, attempts = attempts + 1,
                        last_error = NULL
                 WHERE run_id = $1 AND state = 'pending'",
                &[(&run, Type::INT8), (&now, Type::TEXT)],
            )
        })?;
        Ok(n == 1)
    }

    fn mark_report_failed(&mut self, run: RunId, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.run(move |c| {
            c.execute_typed(
                "UPDATE reports SET attempts = attempts + 1, last_error = $2 WHERE run_id = $1",
                &[(&run, Type::INT8), (&error, Type::TEXT)],
            )?;
            Ok(())
        })
    }

    fn first_seen_of_run(
        &self,
        run: RunId,
    ) -> Result<HashMap<(String, String), DateTime<Utc>>, StoreError> {
        let rows: Vec<(String, String, String)> = self.run(move |c| {
            c.query_typed(
                "SELECT f.kind, f.item_id, r.started_at
                 FROM findings f
                 JOIN runs r ON r.id = (SELECT MIN(g.run_id) FROM findings g
                                        WHERE g.kind = f.kind AND g.item_id = f.item_id)
                 WHERE f.run_id = $1",
                &[(&run, Type::INT8)],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
        })?;
        let mut out = HashMap::with_capacity(rows.len());
        for (kind, id, at) in rows {
            let at = parse_ts("runs", &id, &at)?;
            out.insert((kind, id), at);
        }
        Ok(out)
    }

    fn report_state(&self, run: RunId) -> Result<Option<(String, i64)>, StoreError> {
        self.run(move |c| {
            c.query_typed_opt(
                "SELECT state, attempts FROM reports WHERE run_id = $1",
                &[(&run, Type::INT8)],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }
}

/// A run's findings as the columns bound for them, one array per column.
#[derive(Default)]
struct Findings {
    kind: Vec<&'static str>,
    item: Vec<String>,
    reason: Vec<&'static str>,
    candidates: Vec<String>,
    difference: Vec<Option<String>>,
    detail: Vec<Option<String>>,
}

impl Findings {
    fn push(
        &mut self,
        kind: &'static str,
        item: &str,
        reason: &'static str,
        candidates: String,
        difference: Option<String>,
        detail: Option<String>,
    ) {
        self.kind.push(kind);
        self.item.push(item.to_owned());
        self.reason.push(reason);
        self.candidates.push(candidates);
        self.difference.push(difference);
        self.detail.push(detail);
    }

    /// Each item (kind and id) once, as its last word, in the order the last words
    /// came: an item named twice (a payment the core reported whose earlier intent then
    /// failed) is stored as SQLite stores it.
    fn last_word_each(self) -> Self {
        let n = self.kind.len();
        let mut seen = rustc_hash::FxHashSet::default();
        seen.reserve(n);
        let mut keep: Vec<usize> = (0..n)
            .rev()
            .filter(|&i| seen.insert((self.kind[i], self.item[i].as_str())))
            .collect();
        keep.reverse();
        if keep.len() == n {
            return self;
        }
        let mut out = Self::default();
        for i in keep {
            out.push(
                self.kind[i],
                &self.item[i],
                self.reason[i],
                self.candidates[i].clone(),
                self.difference[i].clone(),
                self.detail[i].clone(),
            );
        }
        out
    }
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(" ")
}
