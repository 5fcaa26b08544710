//! The driver: the conformance vectors on the core component, under the
//! plain `wasmtime run`.
//!
//! The JS hosts prove the core runs the same everywhere by running the
//! vectors (test/conformance/vectors) through test/conformance/runner.mjs.
//! wasmtime runs no JavaScript, so this component plays the host instead: it
//! imports the core's `event-loop` (composed in, unchanged, by ../compose.wac),
//! keeps the callbacks, runs every vector on backend "auto" (real time) and
//! "virtual" (virtual time, through the shim's `virtual-clock`), and prints
//! one line of JSON in the shape of the JS hosts' reports. The vectors are
//! embedded at build time (build.rs); the Node side (../run.mjs) fills in
//! what only it knows: the wasmtime version and the core's sha256.

mod runner;
mod vector;

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use runner::Backend;
use vector::Vector;

wit_bindgen::generate!({
    path: ["../../../../wit", "../wit"],
    // Bindings for the core's interfaces too, though they live in its package (../../../../wit).
    generate_all,
    world: "wasmloop:conformance/driver",
});

include!(concat!(env!("OUT_DIR"), "/vectors.rs"));

/// The report, as the JS hosts print it (runner.mjs `hostReport`), less what
/// needs no driver: backends, TCP echo.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    host: &'static str,
    /// `wasmtime --version`: filled in by run.mjs.
    version: Option<String>,
    auto_backend: &'static str,
    /// sha256 of the core component: filled in by run.mjs.
    component_sha256: Option<String>,
    results: Vec<VectorResult>,
}

/// One vector on one backend (runner.mjs `runAll`).
#[derive(Serialize)]
struct VectorResult {
    name: &'static str,
    backend: &'static str,
    pass: bool,
    got: Vec<String>,
    expect: Value,
}

fn report() -> Report {
    let vectors: Vec<(&'static str, Vector)> = VECTORS
        .iter()
        .map(|&(name, json)| (name, Vector::parse(json)))
        .collect();
    let mut results = Vec::new();
    for backend in [Backend::Auto, Backend::Virtual] {
        for (name, vector) in &vectors {
            if vector.virtual_only && backend != Backend::Virtual {
                continue;
            }
            let outcome = match &vector.program {
                Ok(program) => runner::run_vector(program, backend),
                Err(error) => Err(error.clone()),
            };
            let got = outcome.unwrap_or_else(|error| vec![format!("runner error: {error}")]);
            let pass = vector.expect == Value::from(got.clone());
            results.push(VectorResult {
                name,
                backend: backend.name(),
                pass,
                got,
                expect: vector.expect.clone(),
            });
        }
    }
    Report {
        host: "wasmtime",
        version: None,
        auto_backend: "clock",
        component_sha256: None,
        results,
    }
}

struct Driver;

impl wasi::exports::cli::run::Guest for Driver {
    fn run() -> Result<(), ()> {
        let mut line = serde_json::to_vec(&report()).map_err(|_| ())?;
        line.push(b'\n');
        let mut stdout = wasi::cli::stdout::get_stdout();
        stdout
            .write_all(&line)
            .and_then(|()| Write::flush(&mut stdout))
            .map_err(|_| ())
    }
}

wasi::cli::command::export!(Driver);
