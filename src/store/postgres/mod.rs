//! The PostgreSQL backend (being built): connection settings, a session on a thread of
//! its own, the schema and its migration lock, and the run lock across hosts. The job
//! still runs on SQLite only; nothing here is reachable from the configuration yet.

pub mod settings;
