//! Shoal's micro and comparison benchmarks live under `benches/` and `src/bin/`; this
//! library holds what they share.
