//! The store's ledger on both backends (`store/ledger.rs`).
