//! Linearizability checker for histories of Shoal key-value operations.
//!
//! A history (`History`: who called what, when, and how it ended) is split per key, each
//! key's operations are searched for a linearization with the Wing-Gong / Lowe algorithm
//! (memoized on (linearized set, state)), and the answers combine into a `Verdict`:
//! `Linearizable`, `NotLinearizable { key, explanation }` or `CouldNotDecide { keys,
//! reason }` when a budget cut the search short. TTL expiry is modeled with a documented
//! clock uncertainty (`model.rs`, README).
//!
//! ```
//! use shoal_checker::{check, CheckOptions, History, Op, Operation, Outcome, Verdict};
//! let mut h = History::new();
//! h.push(Operation::new(1, 0, 10, Op::put("k", "v1"), Outcome::Ok));
//! h.push(Operation::new(2, 20, 30, Op::get("k"), Outcome::Read(Some("v1".into()))));
//! let report = check(&h, &CheckOptions::default()).unwrap();
//! assert_eq!(report.verdict, Verdict::Linearizable);
//! ```
//!
//! Module map (dependencies point down): `checker` (split, budget, verdict) -> `explain`
//! -> `reduce` -> `model` (per-key register with TTL) -> `search` (WGL, over `events` and
//! `linset`) ->
//! `history` (data, JSON lines); `recorder` builds histories in tests; `synth` generates linearizable ones.

pub mod checker;
pub mod error;
mod events;
pub mod explain;
pub mod history;
pub mod limits;
pub mod linset;
pub mod model;
pub mod recorder;
pub mod reduce;
pub mod search;
pub mod synth;

pub use checker::{CheckOptions, CheckReport, CheckStats, UndecidedReason, Verdict, check};
pub use error::{CheckerError, InvalidOp};
pub use explain::{ExplainedOp, Explanation};
pub use history::{Blob, ClientId, History, Op, Operation, Outcome, Time};
pub use recorder::{Recorder, Ticket};
pub use synth::{SynthConfig, synthesize};
