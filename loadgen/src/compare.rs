//! `bench/compare`'s report: turns the runs of one comparison (loadgen's `--json` reports
//! and `--hdr` interval logs, listed in a manifest) into `docs/BENCHMARKS.md`: a table and
//! a latency-by-percentile SVG per workload, Shoal next to its floors, and the command
//! lines.
//!
//! Manifest format (tab-separated, one record per line, `#` comments):
//! - `WORKLOAD <id> <title>`: a section, in order.
//! - `SYSTEM <id> <label>`: a system, in table order; the label states its settings.
//! - `RUN <workload> <system> <json> <hdr> <command>`: one loadgen run.
//! - `NA <workload> <system> <reason>`: a system that could not be measured; it appears
//!   in the table as not available, with the reason, never with made-up figures.
//! - `RB <system> <pipeline> <output> <command>`: one `redis-benchmark --csv` run at
//!   `-P <pipeline>` (see [`crate::compare_resp`]); `RBNA <system> <pipeline> <reason>`:
//!   one that could not be made.
//!
//! Invariants: every figure printed comes from a run's JSON report (throughput, p50, p99,
//! p99.9, errors) or from its HDR log (the curves); a run whose report cannot be read is
//! shown as failed with the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::Value;

use crate::compare_resp::RespComparison;
use crate::recorder::{Hist, merge_hist, new_hist};
use crate::report::fmt_ns;

/// One record of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A workload section.
    Workload {
        /// Its id (file names).
        id: String,
        /// Its title.
        title: String,
    },
    /// A system.
    System {
        /// Its id.
        id: String,
        /// What it is and how it is configured.
        label: String,
    },
    /// A measured run.
    Run {
        /// Workload id.
        workload: String,
        /// System id.
        system: String,
        /// The `--json` report.
        json: PathBuf,
        /// The `--hdr` interval log.
        hdr: PathBuf,
        /// The command line.
        command: String,
    },
    /// A system that could not be measured.
    NotAvailable {
        /// Workload id.
        workload: String,
        /// System id.
        system: String,
        /// Why.
        reason: String,
    },
    /// A `redis-benchmark` run.
    RespRun {
        /// System id.
        system: String,
        /// `-P`.
        pipeline: u32,
        /// Its `--csv` stdout.
        output: PathBuf,
        /// The command line.
        command: String,
    },
    /// A `redis-benchmark` run that could not be made.
    RespNotAvailable {
        /// System id.
        system: String,
        /// `-P`.
        pipeline: u32,
        /// Why.
        reason: String,
    },
}

/// Parses a manifest; the message names the bad line.
pub fn parse_manifest(text: &str) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("manifest line {}: cannot parse {line:?}", n + 1);
        let s = |i: usize| f.get(i).map(|s| s.to_string()).ok_or_else(bad);
        let num = |i: usize| s(i)?.parse::<u32>().map_err(|_| bad());
        let rec = match f[0] {
            "WORKLOAD" if f.len() == 3 => Record::Workload {
                id: s(1)?,
                title: s(2)?,
            },
            "SYSTEM" if f.len() == 3 => Record::System {
                id: s(1)?,
                label: s(2)?,
            },
            "RUN" if f.len() == 6 => Record::Run {
                workload: s(1)?,
                system: s(2)?,
                json: PathBuf::from(s(3)?),
                hdr: PathBuf::from(s(4)?),
                command: s(5)?,
            },
            "NA" if f.len() == 4 => Record::NotAvailable {
                workload: s(1)?,
                system: s(2)?,
                reason: s(3)?,
            },
            "RB" if f.len() == 5 => Record::RespRun {
                system: s(1)?,
                pipeline: num(2)?,
                output: PathBuf::from(s(3)?),
                command: s(4)?,
            },
            "RBNA" if f.len() == 4 => Record::RespNotAvailable {
                system: s(1)?,
                pipeline: num(2)?,
                reason: s(3)?,
            },
            _ => return Err(bad()),
        };
        out.push(rec);
    }
    Ok(out)
}

/// Figures of one operation kind of a run, from its JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct KindFigures {
    /// Operations per second.
    pub throughput: f64,
    /// Failed operations.
    pub errors: u64,
    /// Median, 99th, 99.9th percentile, in ns (absent when nothing succeeded).
    pub p50_ns: Option<u64>,
    /// 99th percentile.
    pub p99_ns: Option<u64>,
    /// 99.9th percentile.
    pub p999_ns: Option<u64>,
}

/// The figures of one run: per kind (`get`, `put`, ..., `all`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFigures {
    /// By kind name.
    pub kinds: BTreeMap<String, KindFigures>,
}

/// Reads a loadgen `--json` report.
pub fn read_figures(path: &Path) -> Result<RunFigures, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let kinds = v["kinds"]
        .as_array()
        .ok_or_else(|| format!("{}: no `kinds`", path.display()))?;
    let mut out = RunFigures::default();
    for k in kinds {
        let name = k["kind"].as_str().unwrap_or("?").to_string();
        let lat = &k["latency"];
        out.kinds.insert(
            name,
            KindFigures {
                throughput: k["throughput"].as_f64().unwrap_or(0.0),
                errors: k["errors"].as_u64().unwrap_or(0),
                p50_ns: lat["p50_ns"].as_u64(),
                p99_ns: lat["p99_ns"].as_u64(),
                p999_ns: lat["p999_ns"].as_u64(),
            },
        );
    }
    Ok(out)
}

/// Merges every interval of an HDR interval log (all tags) into one histogram.
pub fn read_hdr_all(path: &Path) -> Result<Hist, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut de = Deserializer::new();
    let mut all = new_hist();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| format!("{}: {e:?}", path.display()))?;
        if let LogEntry::Interval(h) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| format!("{}: base64: {e}", path.display()))?;
            let hist: Hist = de
                .deserialize(&mut raw.as_slice())
                .map_err(|e| format!("{}: histogram: {e:?}", path.display()))?;
            merge_hist(&mut all, &hist);
        }
    }
    Ok(all)
}

fn lat(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), fmt_ns)
}

fn ops(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// What the report was built from, per (workload, system).
#[derive(Debug, Default)]
pub struct Comparison {
    /// Workloads in order: (id, title).
    pub workloads: Vec<(String, String)>,
    /// Systems in order: (id, label).
    pub systems: Vec<(String, String)>,
    /// Outcome per (workload, system): figures, or why there are none.
    pub results: BTreeMap<(String, String), Result<RunFigures, String>>,
    /// Merged histogram per (workload, system), for the plots.
    pub hists: BTreeMap<(String, String), Hist>,
    /// Command lines per (workload, system).
    pub commands: Vec<(String, String, String)>,
    /// The `redis-benchmark` runs.
    pub resp: RespComparison,
}

impl Comparison {
    /// Loads every run of the manifest (a run that cannot be read becomes its error).
    pub fn load(records: &[Record]) -> Comparison {
        let mut c = Comparison::default();
        for r in records {
            match r {
                Record::Workload { id, title } => c.workloads.push((id.clone(), title.clone())),
                Record::System { id, label } => c.systems.push((id.clone(), label.clone())),
                Record::Run {
                    workload,
                    system,
                    json,
                    hdr,
                    command,
                } => {
                    let key = (workload.clone(), system.clone());
                    c.results.insert(key.clone(), read_figures(json));
                    if let Ok(h) = read_hdr_all(hdr) {
                        if !h.is_empty() {
                            c.hists.insert(key, h);
                        }
                    }
                    c.commands
                        .push((workload.clone(), system.clone(), command.clone()));
                }
                Record::NotAvailable {
                    workload,
                    system,
                    reason,
                } => {
                    c.results
                        .insert((workload.clone(), system.clone()), Err(reason.clone()));
                }
                Record::RespRun {
                    system,
                    pipeline,
                    output,
                    command,
                } => c.resp.add_run(system, *pipeline, output, command),
                Record::RespNotAvailable {
                    system,
                    pipeline,
                    reason,
                } => c.resp.add_not_available(system, *pipeline, reason),
            }
        }
        c
    }

    fn figures(&self, workload: &str, system: &str) -> Option<&RunFigures> {
        self.results
            .get(&(workload.to_string(), system.to_string()))
            .and_then(|r| r.as_ref().ok())
    }

    /// The markdown table of one workload.
    pub fn table(&self, workload: &str) -> String {
        let mut kinds: Vec<String> = Vec::new();
        for (sys, _) in &self.systems {
            if let Some(f) = self.figures(workload, sys) {
                for k in f.kinds.keys() {
                    if k != "all" && !kinds.contains(k) {
                        kinds.push(k.clone());
                    }
                }
            }
        }
        kinds.sort();
        let mut t = String::from("| system | ops/s |");
        let mut rule = String::from("|---|---:|");
        for k in &kinds {
            let _ = write!(t, " {k} p50 | {k} p99 | {k} p99.9 |");
            rule.push_str("---:|---:|---:|");
        }
        t.push_str(" errors |\n");
        rule.push_str("---:|\n");
        t.push_str(&rule);
        for (sys, _) in &self.systems {
            let key = (workload.to_string(), sys.clone());
            match self.results.get(&key) {
                None => continue,
                Some(Err(reason)) => {
                    let _ = write!(t, "| {sys} | not available: {reason} |");
                    for _ in &kinds {
                        t.push_str(" | | |");
                    }
                    t.push_str(" |\n");
                }
                Some(Ok(f)) => {
                    let all = f.kinds.get("all");
                    let _ = write!(
                        t,
                        "| {sys} | {} |",
                        all.map_or("-".into(), |a| ops(a.throughput))
                    );
                    for k in &kinds {
                        match f.kinds.get(k) {
                            Some(kf) => {
                                let _ = write!(
                                    t,
                                    " {} | {} | {} |",
                                    lat(kf.p50_ns),
                                    lat(kf.p99_ns),
                                    lat(kf.p999_ns)
                                );
                            }
                            None => t.push_str(" - | - | - |"),
                        }
                    }
                    let _ = writeln!(t, " {} |", all.map_or(0, |a| a.errors));
                }
            }
        }
        t
    }

    /// Draws one workload's curves (one per system measured) to `path`.
    pub fn plot(&self, workload: &str, title: &str, path: &Path) -> Result<bool, String> {
        let series: Vec<(&str, &Hist)> = self
            .systems
            .iter()
            .filter_map(|(sys, _)| {
                self.hists
                    .get(&(workload.to_string(), sys.clone()))
                    .map(|h| (sys.as_str(), h))
            })
            .collect();
        if series.is_empty() {
            return Ok(false);
        }
        crate::plot::write_svg(path, title, &series)?;
        Ok(true)
    }
}

/// Figure of `system` in `workload` for `kind`, if measured.
fn kind_figs<'a>(c: &'a Comparison, w: &str, s: &str, kind: &str) -> Option<&'a KindFigures> {
    c.figures(w, s).and_then(|f| f.kinds.get(kind))
}

/// Shoal next to its floors (issue 7's figures): each line a measured figure, its floor
/// or reference, the ratio and the target. Lines whose runs are missing are skipped.
pub fn floors_section(c: &Comparison) -> String {
    let mut out = String::from(
        "| figure | Shoal | floor / reference | ratio | target |\n|---|---:|---:|---:|---|\n",
    );
    let mut line =
        |name: &str, shoal: Option<u64>, floor: Option<u64>, floor_name: &str, target: &str| {
            if let (Some(s), Some(f)) = (shoal, floor) {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} ({floor_name}) | {:.1}x | {target} |",
                    fmt_ns(s),
                    fmt_ns(f),
                    s as f64 / f.max(1) as f64
                );
            }
        };
    let p50 = |w: &str, s: &str, k: &str| kind_figs(c, w, s, k).and_then(|f| f.p50_ns);
    let p99 = |w: &str, s: &str, k: &str| kind_figs(c, w, s, k).and_then(|f| f.p99_ns);
    for (local, floor, profile) in [
        ("shoal-local", "floor-channel", ""),
        (
            "shoal-local-spin",
            "floor-channel-spin",
            " (latency profile)",
        ),
    ] {
        line(
            &format!("local get p50, 1 in flight{profile}"),
            p50("get-1", local, "get"),
            p50("get-1", floor, "get"),
            "channel round trip",
            "<= 10 us",
        );
        line(
            &format!("local get p99, 1 in flight{profile}"),
            p99("get-1", local, "get"),
            p99("get-1", floor, "get"),
            "channel round trip",
            "<= 50 us",
        );
        line(
            &format!("local put p50, 1 in flight{profile}"),
            p50("put-1", local, "put"),
            p50("put-1", "floor-fsync", "put"),
            "raw write + fdatasync",
            "<= 1.5x the fdatasync baseline",
        );
    }
    // The latency profile pins its shard to the core that takes the disk's interrupts;
    // the same floor pinned to that core is the like-for-like baseline.
    line(
        "local put p50, 1 in flight (latency profile) vs the floor on its core",
        p50("put-1", "shoal-local-spin", "put"),
        p50("put-1", "floor-fsync-pinned", "put"),
        "raw write + fdatasync on the shard's core",
        "<= 1.5x the fdatasync baseline",
    );
    line(
        "remote get p50, 1 in flight",
        p50("get-1", "shoal-1", "get"),
        p50("get-1", "floor-tcp", "get"),
        "loopback TCP round trip",
        "<= 3x the loopback round trip",
    );
    line(
        "remote put p50, 1 in flight",
        p50("put-1", "shoal-1", "put"),
        p50("put-1", "floor-fsync", "put"),
        "raw write + fdatasync",
        "-",
    );
    let tput = |w: &str, s: &str| kind_figs(c, w, s, "all").map(|f| f.throughput);
    let mut tline =
        |name: &str, shoal: Option<f64>, floor: Option<f64>, floor_name: &str, target: &str| {
            if let (Some(s), Some(f)) = (shoal, floor) {
                let _ = writeln!(
                    out,
                    "| {name} | {} ops/s | {} ops/s ({floor_name}) | {:.2}x | {target} |",
                    ops(s),
                    ops(f),
                    s / f.max(1e-9)
                );
            }
        };
    for (local, floor, profile) in [
        ("shoal-local", "floor-channel", ""),
        (
            "shoal-local-spin",
            "floor-channel-spin",
            " (latency profile)",
        ),
    ] {
        tline(
            &format!("local get throughput, 64 in flight{profile}"),
            tput("get-64", local),
            tput("get-64", floor),
            "channel round trip",
            ">= 2x d-engine embedded (196-255 k ops/s), i.e. >= 392-510 k ops/s",
        );
    }
    tline(
        "remote get throughput, 64 in flight",
        tput("get-64", "shoal-1"),
        tput("get-64", "floor-tcp"),
        "loopback TCP",
        "-",
    );
    tline(
        "local put throughput, 64 in flight",
        tput("put-64", "shoal-local"),
        tput("put-1", "floor-fsync"),
        "one fdatasync at a time",
        "group commit should exceed it",
    );
    if out.lines().count() <= 2 {
        return "No Shoal run and its floor were both measured in this comparison.\n".to_string();
    }
    out
}

/// The text above the `redis-benchmark` table.
const RESP_INTRO: &str = "\n## redis-benchmark against Shoal's RESP port and redis-server\n\n\
The same `redis-benchmark -t set,get` command (see the command lines below) against each \
system, started fresh for it: Shoal with `--resp-addr` (redis-benchmark connects to shard \
0's RESP port; shard 0 forwards each key to its owning shard), Redis as in the loadgen \
tables. Without `-r`, redis-benchmark uses one key (`key:__rand_int__`) for every request: \
one Raft group of Shoal's does all the work. Latencies are redis-benchmark's own (its \
histogram, ms rounded to 1 us). A run that got any error reply is shown as not available \
(redis-benchmark 7 stops at the first one).\n\n";

/// The whole `BENCHMARKS.md`: `header` (machine, versions, systems, as the script wrote
/// it), then per workload a table and a plot (written next to `out` under `plots_dir`),
/// the floors, and the command lines.
pub fn render(
    c: &Comparison,
    header: &str,
    out: &Path,
    plots_dir: &Path,
) -> Result<String, String> {
    let mut md = String::from(header);
    if !md.ends_with('\n') {
        md.push('\n');
    }
    md.push_str(
        "\n## Systems\n\n| id | what, and its durability / consistency settings |\n|---|---|\n",
    );
    for (id, label) in &c.systems {
        let _ = writeln!(md, "| {id} | {label} |");
    }
    md.push_str("\n## Shoal next to its floors (measured in the same run)\n\n");
    md.push_str(&floors_section(c));
    std::fs::create_dir_all(plots_dir)
        .map_err(|e| format!("creating {}: {e}", plots_dir.display()))?;
    let base = out.parent().unwrap_or(Path::new("."));
    for (id, title) in &c.workloads {
        // A workload no selected system ran (e.g. ONLY=resp-...) gets no empty section.
        if !c.results.keys().any(|(w, _)| w == id) {
            continue;
        }
        let _ = write!(md, "\n## {title}\n\n");
        md.push_str(&c.table(id));
        let svg = plots_dir.join(format!("{id}.svg"));
        if c.plot(id, title, &svg)? {
            let rel = svg.strip_prefix(base).unwrap_or(&svg);
            let _ = write!(
                md,
                "\n![{title}: latency by percentile, all operations]({})\n",
                rel.display()
            );
        }
    }
    if !c.resp.rows.is_empty() {
        md.push_str(RESP_INTRO);
        md.push_str(&c.resp.table());
        md.push_str("\nIssue 9's targets, from the rows above:\n\n");
        md.push_str(&c.resp.targets("shoal-1", "redis-always", "redis-none"));
    }
    md.push_str("\n## Command lines\n\n```\n");
    for (w, s, cmd) in &c.commands {
        let _ = writeln!(md, "# {w} / {s}\n{cmd}");
    }
    for (s, p, cmd) in &c.resp.commands {
        let _ = writeln!(md, "# redis-benchmark -P {p} / {s}\n{cmd}");
    }
    md.push_str("```\n");
    Ok(md)
}
