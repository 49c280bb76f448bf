//! cp-recon: reconciles CryptoPocket on-ramp bank-transfer payments with the
//! integration's bank transactions.
//!
//! Layout:
//! - `domain`   — ids, money, records; parsed once at the edge.
//! - `text`     — times, dates and amounts written as text, one format for every reader.
//! - `matching` — the pure core: decisions and reasons (no I/O, no clock).
//! - `api`      — the CryptoPocket client; owns every wire detail.
//! - `record`   — a provider record as read, with its raw JSON, or why it could not be.
//! - `sandbox`  — a local simulator of the CryptoPocket API (tests, demo, benchmarks).
//! - `store`    — SQLite: all SQL and row mapping, migrations on open.
//! - `report`   — CSV reports for the finance team.
//! - `email`    — the report e-mail and its outbox.

pub mod api;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod email;
pub mod lock;
pub mod matching;
pub mod metrics;
pub mod reconcile;
pub mod record;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod text;
