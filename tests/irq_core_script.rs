//! `scripts/irq-core`: prints the core that took the most interrupts of a directory's
//! disk, or nothing with exit status 1 when it cannot tell; never anything else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn irq_core(dir: &Path) -> (Option<i32>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/irq-core");
    let out = Command::new(script).arg(dir).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn names_a_core_of_this_machine_or_says_it_cannot_tell() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    match irq_core(dir.path()) {
        (Some(0), out) => {
            let core: usize = out.trim().parse().expect("a core number");
            assert!(core < cores, "core {core} of {cores}");
            assert_eq!(out, format!("{core}\n"));
        }
        (Some(1), out) => assert!(out.is_empty(), "{out:?}"),
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[test]
fn a_file_system_without_a_disk_has_no_interrupt_core() {
    // procfs has no block device behind it.
    assert_eq!(irq_core(Path::new("/proc")), (Some(1), String::new()));
}
