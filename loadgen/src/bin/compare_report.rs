//! `compare-report MANIFEST HEADER.md OUT.md PLOTS_DIR`: writes `bench/compare`'s
//! `docs/BENCHMARKS.md` from its runs (see `loadgen::compare` for the manifest format).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, manifest, header, out, plots] = args.as_slice() else {
        eprintln!("usage: compare-report MANIFEST HEADER.md OUT.md PLOTS_DIR");
        return ExitCode::from(2);
    };
    let run = || -> Result<(), String> {
        let text = std::fs::read_to_string(manifest).map_err(|e| format!("{manifest}: {e}"))?;
        let header = std::fs::read_to_string(header).map_err(|e| format!("{header}: {e}"))?;
        let records = loadgen::compare::parse_manifest(&text)?;
        let c = loadgen::compare::Comparison::load(&records);
        let md = loadgen::compare::render(&c, &header, Path::new(out), Path::new(plots))?;
        std::fs::write(out, md).map_err(|e| format!("{out}: {e}"))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare-report: {e}");
            ExitCode::FAILURE
        }
    }
}
