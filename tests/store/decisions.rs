//! The store's decisions on both backends (`store/decisions.rs`).
