//! The driver: the conformance vectors on the core component, under
//! `wasmtime run`.
//!
//! The JS hosts prove the core runs the same everywhere by running the
//! vectors (test/conformance/vectors) through test/conformance/runner.mjs.
//! wasmtime runs no JavaScript; there the host is the `wasmloop-wasi` crate
//! (rust-core/wasi/loop), and this command is a loop program written with
//! it, composed with the imports component and the unchanged core
//! (rust-core/wasi/compose.wac). It runs every vector on backend "auto"
//! (real time) and "virtual" (virtual time), and prints one line of JSON in
//! the shape of the JS hosts' reports. The vectors are embedded at build
//! time (build.rs). The core's sha256 is embedded too (`wasmloop_wasi::CORE_SHA256`,
//! set by the build from the component it composes in), so the report names
//! the core it was composed with; the Node side (../run.mjs) adds the
//! wasmtime version and checks the composed file nests those very bytes.

mod runner;
mod vector;

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use runner::Backend;
use vector::Vector;

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
    /// sha256 of the core component this command was composed with.
    component_sha256: Option<&'static str>,
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
    // Parsed once for the whole run: callbacks refer to their steps.
    let vectors: &'static [(&'static str, Vector)] = VECTORS
        .iter()
        .map(|&(name, json)| (name, Vector::parse(json)))
        .collect::<Vec<_>>()
        .leak();
    let mut results = Vec::new();
    for backend in [Backend::Auto, Backend::Virtual] {
        for (name, vector) in vectors {
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
        // What the vectors' "auto" runs on: wasmloop-wasi's own readiness
        // backend, real time with readiness from `wasi:io/poll` and TCP on
        // `wasi:sockets` (no JavaScript backend exists here).
        auto_backend: "wasi-poll",
        component_sha256: wasmloop_wasi::CORE_SHA256,
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
