//! `loadgen`: Shoal's benchmark engine and binary.
//!
//! Module map (dependencies point down):
//! - `app` (the binary's flow), `cli` (flags); `compare`, `compare_resp` (bench/compare's
//!   report) ->
//! - `report`, `hdr_out`, `plot` (outputs) ->
//! - `driver` (closed/open loops, preload), `progress` ->
//! - `recorder`, `workload`, `keys`, `config` ->
//! - `targets` (the [`targets::Target`] trait and the systems).

pub mod app;
pub mod cli;
pub mod compare;
pub mod compare_resp;
pub mod config;
pub mod driver;
pub mod hdr_out;
pub mod keys;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod targets;
pub mod workload;
