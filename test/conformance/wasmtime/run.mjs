// The conformance vectors under the wasmtime CLI: runs the composed component
// (rules.mk builds it: shim -> core -> driver) and returns its report, in the
// shape of the JS hosts' (runner.mjs `hostReport`), with what only this side
// knows filled in: the wasmtime version, the sha256 of the core component,
// and whether the composed binary nests those exact bytes.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { execute } from '../process.mjs';

/**
 * Runs `wasmtime run <component>` and resolves to the report. `wasmtime` is
 * the CLI's path, `component` the composed component's, `coreComponent` the
 * core component's (build/core.component.wasm). Throws, with wasmtime's
 * stderr, if wasmtime fails or prints no report.
 */
export async function runWasmtime({ wasmtime, component, coreComponent, timeoutMs = 120_000 }) {
  const version = await execute(wasmtime, ['--version'], { timeoutMs });
  if (version.code !== 0) throw new Error(`${wasmtime} --version failed (${version.signal ?? version.code}):\n${version.stderr}`);
  const run = await execute(wasmtime, ['run', component], { timeoutMs });
  if (run.code !== 0) {
    throw new Error(`${wasmtime} run ${component} exited with ${run.signal ?? run.code}:\n${run.stderr.slice(-4000)}`);
  }
  const line = run.stdout.trim().split('\n').pop();
  let report;
  try {
    report = JSON.parse(line);
  } catch {
    throw new Error(`${wasmtime} run ${component}: no JSON report on stdout:\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`);
  }
  const [composed, core] = await Promise.all([readFile(component), readFile(coreComponent)]);
  return {
    host: report.host,
    version: version.stdout.trim(),
    autoBackend: report.autoBackend,
    componentSha256: createHash('sha256').update(core).digest('hex'),
    coreComponentInComposed: composed.indexOf(core) >= 0,
    results: report.results,
  };
}
