//! cp-recon: reconciles CryptoPocket on-ramp bank-transfer payments with the
//! integration's bank transactions.
//!
//! Layout:
//! - `domain`    — ids, money, records; parsed once at the edge.
//! - `text`      — times, dates and amounts written as text, one format for every reader.
//! - `record`    — a provider record as read, with its raw JSON, or why it could not be.
//! - `matching`  — the pure core: decisions and reasons (no I/O, no clock).
//! - `api`       — the CryptoPocket client; owns every wire detail.
//! - `sandbox`   — a local simulator of the CryptoPocket API (tests, demo, benchmarks).
//! - `store`     — SQLite: all SQL and row mapping, migrations on open.
//! - `sync`      — reads every list from the provider into the store.
//! - `reconcile` — reconcile calls, exactly once; the I/O side of `matching::fate`.
//! - `report`    — the reports for the finance team: CSVs, a workbook, which mail to send.
//! - `desk`      — what people decide about reported items: review, approve, dismiss,
//!   reopen, apply a report CSV handed back, history.
//! - `email`     — the report e-mail: its message and its delivery over SMTP.
//! - `run`       — one run end to end: sync, match, reconcile, report, e-mail.
//! - `pager`     — long output read at a terminal goes through `$PAGER`, as git does.
//! - `status`    — `cp-recon status`: the last runs, open items and blockers on one screen.
//! - `schedule`  — the long-running mode's cron schedule, in a time zone.
//! - `lock`      — the run lock: two runs never overlap on one database.
//! - `stop`      — a request to stop a run, from SIGTERM or SIGINT.
//! - `metrics`   — the Prometheus textfile and the dead-man's-switch ping.
//! - `telemetry` — tracing setup: log format and the `RUST_LOG` filter.
//! - `config`    — typed configuration: one TOML file, then environment overrides.
//! - `cli`       — command-line interface: the modes of the job and their exit codes.
//! - `demo`      — `cp-recon demo`: the sandbox, one run and its reports, in one command.

pub mod api;
pub mod cli;
pub mod config;
pub mod database;
pub mod demo;
pub mod desk;
pub mod domain;
pub mod email;
pub mod exit;
pub mod lock;
pub mod matching;
pub mod metrics;
pub mod pager;
pub mod reconcile;
pub mod record;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod schedule;
pub mod status;
pub mod stop;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod text;
