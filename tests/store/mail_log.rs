//! The store's mail log on both backends (`store/mail_log.rs`).
