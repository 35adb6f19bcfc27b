//! `bench/compare`'s `redis-benchmark` section: the same `redis-benchmark -t set,get` command
//! run against Shoal's RESP listener and against `redis-server`, read back from its `--csv`
//! output and put in one table, with issue 9's targets checked against the figures of the
//! same run.
//!
//! Owns [`parse_csv`] (one run's output) and [`RespComparison`] (every run: table and
//! targets). Invariants: every figure printed comes from a run's CSV output; a run whose
//! output cannot be read, has no `SET` and `GET` rows, or shows an error reply is shown as
//! not available with the reason, never with figures; a target line is printed only when
//! both of its runs were measured.

use std::fmt::Write as _;
use std::path::Path;

use crate::report::fmt_ns;

/// One test (`SET`, `GET`) of a `redis-benchmark --csv` run.
#[derive(Debug, Clone, PartialEq)]
pub struct RespFigures {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Slowest request, ns.
    pub max_ns: u64,
}

/// The tests of one run, in output order (test name upper-case, e.g. `SET`).
pub type RespRun = Vec<(String, RespFigures)>;

fn ms_to_ns(field: &str) -> Result<u64, String> {
    let ms: f64 = field
        .parse()
        .map_err(|_| format!("not a latency in ms: {field:?}"))?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("not a latency in ms: {field:?}"));
    }
    // Rounded to whole ns: redis-benchmark prints 3 decimals of a millisecond.
    Ok((ms * 1e6).round() as u64)
}

/// Parses the stdout of `redis-benchmark --csv`: a header line
/// (`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
/// "p99_latency_ms","max_latency_ms"`) and one quoted line per test. Columns are found by
/// name in the header. An `Error from server` line anywhere (redis-benchmark 7 exits on the
/// first error reply, older versions print it and go on counting) makes it an error.
pub fn parse_csv(text: &str) -> Result<RespRun, String> {
    if let Some(line) = text.lines().find(|l| l.contains("Error from server")) {
        return Err(format!("the server answered an error: {}", line.trim()));
    }
    let mut lines = text.lines().map(str::trim).filter(|l| l.starts_with('"'));
    let split = |l: &str| -> Vec<String> {
        l.split(',')
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect()
    };
    let header = lines
        .next()
        .map(split)
        .ok_or("no CSV header in redis-benchmark's output")?;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("redis-benchmark's CSV header has no {name:?} column"))
    };
    let (test, rps, p50, p99, max) = (
        col("test")?,
        col("rps")?,
        col("p50_latency_ms")?,
        col("p99_latency_ms")?,
        col("max_latency_ms")?,
    );
    let mut out = RespRun::new();
    for line in lines {
        let f = split(line);
        let get = |i: usize| {
            f.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("short CSV line: {line:?}"))
        };
        let rps_v: f64 = get(rps)?
            .parse()
            .map_err(|_| format!("not a rate: {line:?}"))?;
        out.push((
            get(test)?.to_ascii_uppercase(),
            RespFigures {
                rps: rps_v,
                p50_ns: ms_to_ns(get(p50)?)?,
                p99_ns: ms_to_ns(get(p99)?)?,
                max_ns: ms_to_ns(get(max)?)?,
            },
        ));
    }
    if out.is_empty() {
        return Err("no test line in redis-benchmark's output".to_string());
    }
    Ok(out)
}

/// Reads and parses one run's output file.
pub fn read_run(path: &Path) -> Result<RespRun, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_csv(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// One row of the table: a system at one pipeline depth.
#[derive(Debug)]
pub struct RespRow {
    /// System id (as in the manifest's `SYSTEM` records).
    pub system: String,
    /// `-P`: requests pipelined per connection.
    pub pipeline: u32,
    /// Figures, or why there are none.
    pub result: Result<RespRun, String>,
}

/// Every `redis-benchmark` run of a comparison, in manifest order.
#[derive(Debug, Default)]
pub struct RespComparison {
    /// The rows.
    pub rows: Vec<RespRow>,
    /// Command lines: (system, pipeline, command).
    pub commands: Vec<(String, u32, String)>,
}

fn rps(v: f64) -> String {
    if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

impl RespComparison {
    /// Adds a measured run (its output is read now; an unreadable one becomes its error).
    pub fn add_run(&mut self, system: &str, pipeline: u32, output: &Path, command: &str) {
        self.rows.push(RespRow {
            system: system.to_string(),
            pipeline,
            result: read_run(output),
        });
        self.commands
            .push((system.to_string(), pipeline, command.to_string()));
    }

    /// Adds a run that could not be made.
    pub fn add_not_available(&mut self, system: &str, pipeline: u32, reason: &str) {
        self.rows.push(RespRow {
            system: system.to_string(),
            pipeline,
            result: Err(reason.to_string()),
        });
    }

    fn figures(&self, system: &str, pipeline: u32, test: &str) -> Option<&RespFigures> {
        let row = self
            .rows
            .iter()
            .find(|r| r.system == system && r.pipeline == pipeline)?;
        let run = row.result.as_ref().ok()?;
        run.iter().find(|(t, _)| t == test).map(|(_, f)| f)
    }

    /// The table: one row per (system, `-P`), SET and GET side by side.
    pub fn table(&self) -> String {
        let mut t = String::from(
            "| system | -P | SET req/s | SET p50 | SET p99 | SET max | GET req/s | GET p50 | \
             GET p99 | GET max |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let _ = write!(t, "| {} | {} |", r.system, r.pipeline);
            match &r.result {
                Err(reason) => {
                    let _ = writeln!(t, " not available: {reason} | | | | | | | |");
                }
                Ok(run) => {
                    for test in ["SET", "GET"] {
                        match run.iter().find(|(n, _)| n == test) {
                            Some((_, f)) => {
                                let _ = write!(
                                    t,
                                    " {} | {} | {} | {} |",
                                    rps(f.rps),
                                    fmt_ns(f.p50_ns),
                                    fmt_ns(f.p99_ns),
                                    fmt_ns(f.max_ns)
                                );
                            }
                            None => t.push_str(" - | - | - | - |"),
                        }
                    }
                    t.push('\n');
                }
            }
        }
        t
    }

    /// Issue 9's targets, each from two runs of this comparison: Shoal's durable single
    /// node beats Redis `appendfsync always` on SET, and reaches at least half of Redis
    /// without persistence on GET, at every pipeline depth measured.
    pub fn targets(&self, shoal: &str, durable_ref: &str, fast_ref: &str) -> String {
        let mut pipelines: Vec<u32> = self.rows.iter().map(|r| r.pipeline).collect();
        pipelines.sort_unstable();
        pipelines.dedup();
        let mut out = String::from(
            "| target | Shoal | reference | ratio | holds |\n|---|---:|---:|---:|---|\n",
        );
        let mut any = false;
        for p in pipelines {
            let checks = [
                ("SET", durable_ref, 1.0, "beats", "> 1x"),
                ("GET", fast_ref, 0.5, "reaches half of", ">= 0.5x"),
            ];
            for (test, reference, min_ratio, verb, bound) in checks {
                let (Some(s), Some(r)) = (
                    self.figures(shoal, p, test),
                    self.figures(reference, p, test),
                ) else {
                    continue;
                };
                any = true;
                let ratio = s.rps / r.rps.max(1e-9);
                let holds = if min_ratio >= 1.0 {
                    ratio > min_ratio
                } else {
                    ratio >= min_ratio
                };
                let _ = writeln!(
                    out,
                    "| {test} -P {p}: {shoal} {verb} {reference} ({bound}) | {} req/s | {} req/s | \
                     {ratio:.2}x | {} |",
                    rps(s.rps),
                    rps(r.rps),
                    if holds { "yes" } else { "**no**" }
                );
            }
        }
        if any {
            out
        } else {
            format!("Not checked: {shoal} and its references were not all measured.\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
\"SET\",\"16207.46\",\"2.256\",\"0.096\",\"0.743\",\"8.831\",\"27.151\",\"54.207\"\n\
\"GET\",\"17667.85\",\"2.141\",\"0.088\",\"0.695\",\"5.751\",\"25.871\",\"79.743\"\n";

    #[test]
    fn csv_of_redis_benchmark_7_is_read_by_column_name() {
        let run = parse_csv(CSV).unwrap();
        assert_eq!(run.len(), 2);
        assert_eq!(run[0].0, "SET");
        assert_eq!(
            run[0].1,
            RespFigures {
                rps: 16207.46,
                p50_ns: 743_000,
                p99_ns: 27_151_000,
                max_ns: 54_207_000
            }
        );
        assert_eq!(run[1].0, "GET");
        assert_eq!(run[1].1.p99_ns, 25_871_000);
    }

    #[test]
    fn error_replies_missing_rows_and_bad_fields_are_errors() {
        let with_err = format!("Error from server: TRYAGAIN no leader\n{CSV}");
        assert!(parse_csv(&with_err).unwrap_err().contains("TRYAGAIN"));
        assert!(parse_csv("").unwrap_err().contains("no CSV header"));
        let header_only = CSV.lines().next().unwrap();
        assert!(parse_csv(header_only).unwrap_err().contains("no test line"));
        let bad = CSV.replace("16207.46", "fast");
        assert!(parse_csv(&bad).unwrap_err().contains("not a rate"));
        let neg = CSV.replace("0.743", "-1");
        assert!(parse_csv(&neg).unwrap_err().contains("not a latency"));
        let no_p99 = CSV.replace("p99_latency_ms", "p98_latency_ms");
        assert!(parse_csv(&no_p99).unwrap_err().contains("p99_latency_ms"));
    }

    fn run(set: f64, get: f64) -> RespRun {
        let f = |rps| RespFigures {
            rps,
            p50_ns: 1_000_000,
            p99_ns: 2_000_000,
            max_ns: 3_000_000,
        };
        vec![("SET".into(), f(set)), ("GET".into(), f(get))]
    }

    #[test]
    fn table_and_targets_come_from_the_runs() {
        let mut c = RespComparison::default();
        for (sys, p, set, get) in [
            ("shoal-1", 1, 50_000.0, 40_000.0),
            ("redis-always", 1, 45_000.0, 90_000.0),
            ("redis-none", 1, 85_000.0, 85_000.0),
            ("shoal-1", 16, 100_000.0, 200_000.0),
            ("redis-none", 16, 600_000.0, 600_000.0),
        ] {
            c.rows.push(RespRow {
                system: sys.into(),
                pipeline: p,
                result: Ok(run(set, get)),
            });
        }
        c.add_not_available("redis-always", 16, "did not start");
        let t = c.table();
        assert!(
            t.contains("| shoal-1 | 1 | 50.0 k | 1.00ms | 2.00ms | 3.00ms | 40.0 k |"),
            "{t}"
        );
        assert!(
            t.contains("| redis-always | 16 | not available: did not start |"),
            "{t}"
        );
        let g = c.targets("shoal-1", "redis-always", "redis-none");
        assert!(
            g.contains("| SET -P 1: shoal-1 beats redis-always (> 1x) | 50.0 k req/s | 45.0 k req/s | 1.11x | yes |"),
            "{g}"
        );
        assert!(
            g.contains("| GET -P 1: shoal-1 reaches half of redis-none (>= 0.5x) | 40.0 k req/s | 85.0 k req/s | 0.47x | **no** |"),
            "{g}"
        );
        // -P 16 SET has no durable reference measured: no line, rather than a guess.
        assert!(!g.contains("SET -P 16"), "{g}");
        assert!(g.contains("GET -P 16"), "{g}");
        let none = RespComparison::default().targets("shoal-1", "a", "b");
        assert!(none.starts_with("Not checked"), "{none}");
    }
}
