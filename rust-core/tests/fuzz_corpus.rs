//! Replays the kept fuzzing inputs through the harness, so each stays a
//! regression test: rust-core/fuzz/regressions (committed: the seeds, inputs
//! the fuzzer found interesting, and any crash it ever found, once fixed),
//! and the working corpus of the last `make fuzz` when there is one.

fn replay(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut inputs = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        wasmloop_core::fuzzing::run(&data);
        inputs += 1;
    }
    inputs
}

#[test]
fn the_fuzz_corpus_keeps_the_invariants() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let kept = replay(&root.join("regressions"));
    let working = replay(&root.join("corpus/core_ops"));
    eprintln!("fuzz corpus: {kept} kept inputs and {working} from the last fuzzing run replayed");
    assert!(kept >= 4, "the kept corpus has its seeds");
}
