//! Embeds the conformance vectors: writes `$OUT_DIR/vectors.rs`, a table of
//! (name, JSON text) for every `test/conformance/vectors/*.json`, sorted by
//! file name as the JS hosts load them (hosts.mjs `loadVectors`). The driver
//! parses the JSON at run time, so the vectors have one source of truth.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../vectors");
    let dir = dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut table = String::from(
        "/// (name, JSON) of each conformance vector.\npub static VECTORS: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        let name = path
            .file_stem()
            .unwrap()
            .to_str()
            .expect("vector names are UTF-8");
        table += &format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.to_str().expect("paths are UTF-8")
        );
    }
    table += "];\n";
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("vectors.rs");
    fs::write(&out, table).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
