//! Linearizability checker for histories of key-value operations.
