//! `wal-bench`: measures the WAL on the real disk against a raw baseline, in one run.
//!
//! Figures: a raw 4 KiB O_DIRECT overwrite + fdatasync with plain syscalls (baseline);
//! durable single-writer append latency through the WAL for every write path
//! ([`SyncMode`]); group-commit throughput with 64 concurrent appenders; recovery speed
//! over a 1 GiB log. `--json` prints one JSON line last. `--dir <path>` picks the file
//! system (default: the current directory); the bench removes what it creates.

use bytes::Bytes;
use hdrhistogram::Histogram;
use shoal_wal::{GlommioDisk, SyncMode, Wal, WalConfig};
use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const PER_ROUND: usize = 100;
const WARMUP: usize = 50;
const WRITERS: usize = 64;
const GROUP_TIME: Duration = Duration::from_secs(4);
const RECOVERY_LOG: u64 = 1 << 30;

type BoxErr = Box<dyn std::error::Error>;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Raw baseline: overwrites successive 4 KiB blocks of a zero-filled file, O_DIRECT,
/// pwrite + fdatasync with plain syscalls.
struct Baseline {
    file: File,
    buf: Vec<u8>,
    start: usize,
    next: u64,
}

const BASE_FILE: u64 = 64 << 20;

impl Baseline {
    fn new(dir: &Path) -> Result<Self, BoxErr> {
        let path = dir.join("baseline.dat");
        std::fs::write(&path, vec![0u8; BASE_FILE as usize])?;
        File::open(&path)?.sync_all()?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        let mut buf = vec![0u8; 8192];
        let start = buf.as_ptr().align_offset(4096);
        buf[start..start + 4096].fill(0x5a);
        Ok(Baseline {
            file,
            buf,
            start,
            next: 0,
        })
    }

    fn one(&mut self) -> Result<u64, BoxErr> {
        let t = Instant::now();
        self.file
            .write_all_at(&self.buf[self.start..self.start + 4096], self.next)?;
        self.file.sync_data()?;
        self.next = (self.next + 4096) % BASE_FILE;
        Ok(t.elapsed().as_micros() as u64)
    }
}

/// Single-writer latency of every write path and of the baseline, interleaved in rounds
/// so the drift of the shared machine hits all of them alike.
async fn latencies(
    root: &Path,
) -> Result<(Histogram<u64>, Vec<(SyncMode, Histogram<u64>)>), BoxErr> {
    let mut base = Baseline::new(root)?;
    let payload = Bytes::from(vec![7u8; 100]);
    let mut wals = Vec::new();
    for m in SyncMode::ALL {
        let disk = GlommioDisk::open(root.join(mode_name(m)), m).await?;
        let (w, _) = Wal::open(disk, WalConfig::default()).await?;
        w.append([(1, payload.clone())])?.await?;
        w.ready_next_segment().await?;
        for i in 0..WARMUP as u64 {
            w.append([(i + 2, payload.clone())])?.await?;
        }
        wals.push((m, w, hist(), WARMUP as u64 + 2));
    }
    let mut bh = hist();
    for _ in 0..WARMUP {
        base.one()?;
    }
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            bh.record(base.one()?)?;
        }
        for (_, w, h, next) in wals.iter_mut() {
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                w.append([(*next, payload.clone())])?.await?;
                h.record(t.elapsed().as_micros() as u64)?;
                *next += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (m, w, h, _) in wals {
        w.close().await?;
        out.push((m, h));
    }
    Ok((bh, out))
}

async fn group_commit(dir: &Path, mode: SyncMode) -> Result<(f64, f64), BoxErr> {
    let disk = GlommioDisk::open(dir, mode).await?;
    group_commit_on(disk).await
}

/// Group commit with 64 closed-loop appenders on any disk (the in-memory one gives the
/// CPU ceiling of the WAL itself).
async fn group_commit_on<D: shoal_wal::Disk + Clone + 'static>(
    disk: D,
) -> Result<(f64, f64), BoxErr> {
    let (w, _) = Wal::open(disk, WalConfig::default()).await?;
    let w = Rc::new(w);
    let payload = Bytes::from(vec![9u8; 100]);
    w.append([(1, payload.clone())])?.await?;
    w.ready_next_segment().await?;
    let next = Rc::new(Cell::new(2u64));
    let done = Rc::new(Cell::new(0u64));
    let writes0 = w.stats().writes;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (w, next, done, payload) = (w.clone(), next.clone(), done.clone(), payload.clone());
        tasks.push(glommio::spawn_local(async move {
            while start.elapsed() < GROUP_TIME {
                let i = next.get();
                next.set(i + 1);
                w.append([(i, payload.clone())])?.await?;
                done.set(done.get() + 1);
            }
            Ok::<(), shoal_wal::WalError>(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let writes = w.stats().writes - writes0;
    let n = done.get() as f64;
    Ok((n / secs, n / writes.max(1) as f64))
}

async fn recovery(dir: &Path, mode: SyncMode) -> Result<(f64, u64, f64), BoxErr> {
    let payload = Bytes::from(vec![3u8; 64 << 10]);
    {
        let disk = GlommioDisk::open(dir, mode).await?;
        let (w, _) = Wal::open(disk, WalConfig::default()).await?;
        let mut i = 1u64;
        let mut written = 0u64;
        while written < RECOVERY_LOG {
            let batch: Vec<_> = (0..16).map(|k| (i + k, payload.clone())).collect();
            i += 16;
            written += 16 * payload.len() as u64;
            w.append(batch)?.await?;
        }
        w.close().await?;
    }
    let disk = GlommioDisk::open(dir, mode).await?;
    let t = Instant::now();
    let (w, rep) = Wal::open(disk, WalConfig::default()).await?;
    let secs = t.elapsed().as_secs_f64();
    assert!(rep.torn_tail.is_none() && rep.live_entries > 0);
    drop(w);
    Ok((
        rep.bytes_scanned as f64 / secs / 1e6,
        rep.bytes_scanned,
        secs,
    ))
}

fn mode_name(m: SyncMode) -> &'static str {
    match m {
        SyncMode::UringFdatasync => "uring_fdatasync",
        SyncMode::UringDsync => "uring_dsync",
        SyncMode::SyncThread => "sync_thread",
        SyncMode::Inline => "inline",
    }
}

fn main() -> Result<(), BoxErr> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let base = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|p| args.get(p + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let root = base.join(format!("wal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let result = run(&root, json);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(root: &Path, json: bool) -> Result<(), BoxErr> {
    if std::env::args().any(|a| a == "--cpu-only") {
        let ex = glommio::LocalExecutorBuilder::default().spawn(move || async move {
            group_commit_on(shoal_wal::MemDisk::new())
                .await
                .map_err(|e| e.to_string())
        })?;
        let (rps, per) = ex.join().map_err(|e| format!("executor: {e}"))??;
        println!("group commit on the in-memory disk: {rps:.0} records/s, {per:.1} per write");
        return Ok(());
    }
    if std::env::args().any(|a| a == "--recovery-only") {
        let r = root.to_path_buf();
        let ex = glommio::LocalExecutorBuilder::default().spawn(move || async move {
            recovery(&r.join("recovery"), SyncMode::DEFAULT)
                .await
                .map_err(|e| e.to_string())
        })?;
        let (mbps, bytes, secs) = ex.join().map_err(|e| format!("executor: {e}"))??;
        println!("recovery: {mbps:.0} MB/s ({bytes} bytes scanned in {secs:.2} s)");
        return Ok(());
    }
    let r = root.to_path_buf();
    let ex = glommio::LocalExecutorBuilder::default()
        .name("wal-bench")
        .spawn(move || async move {
            let (base, lat) = latencies(&r).await.map_err(|e| e.to_string())?;
            let d = r.join("group");
            let g = group_commit(&d, SyncMode::DEFAULT)
                .await
                .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&d);
            let d = r.join("recovery");
            let rec = recovery(&d, SyncMode::DEFAULT)
                .await
                .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&d);
            Ok::<_, String>((base, lat, g, rec))
        })?;
    let (base, lat, (group_rps, per_sync), (rec_mbps, rec_bytes, rec_secs)) =
        ex.join().map_err(|e| format!("executor: {e}"))??;
    let b50 = base.value_at_quantile(0.5) as f64;
    let b99 = base.value_at_quantile(0.99) as f64;
    let bmean = base.mean().round();
    println!(
        "baseline (pwrite+fdatasync, O_DIRECT, zero-filled): p50 {b50} us  p99 {b99} us  mean {bmean} us"
    );
    let mut obj = serde_json::json!({
        "baseline_p50_us": b50,
        "baseline_p99_us": b99,
        "baseline_mean_us": bmean,
    });
    for (m, h) in &lat {
        let (p50, p99) = (
            h.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.99) as f64,
        );
        let mean = h.mean().round();
        let star = if *m == SyncMode::DEFAULT {
            " (production path)"
        } else {
            ""
        };
        println!(
            "append {:16} p50 {p50:7} us  p99 {p99:7} us  mean {mean:7} us  ratio_p50 {:.2}{star}",
            mode_name(*m),
            p50 / b50
        );
        obj[format!("append_{}_p50_us", mode_name(*m))] = p50.into();
        obj[format!("append_{}_p99_us", mode_name(*m))] = p99.into();
        if *m == SyncMode::DEFAULT {
            obj["append_p50_us"] = p50.into();
            obj["append_p99_us"] = p99.into();
            obj["append_mean_us"] = mean.into();
            obj["ratio_p50"] = ((p50 / b50 * 100.0).round() / 100.0).into();
        }
    }
    println!(
        "group commit ({WRITERS} appenders, 100 B): {group_rps:.0} records/s, {per_sync:.1} records per sync"
    );
    println!(
        "recovery: {:.0} MB/s ({} bytes scanned in {rec_secs:.2} s)",
        rec_mbps, rec_bytes
    );
    obj["production_mode"] = mode_name(SyncMode::DEFAULT).into();
    obj["group_records_per_s"] = group_rps.round().into();
    obj["records_per_sync"] = ((per_sync * 10.0).round() / 10.0).into();
    obj["recovery_mb_per_s"] = rec_mbps.round().into();
    if json {
        println!("{obj}");
    }
    Ok(())
}
