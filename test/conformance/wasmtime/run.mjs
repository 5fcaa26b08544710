// The conformance vectors under the wasmtime CLI: runs the composed driver
// (rules.mk builds it: imports -> core -> driver) and returns its report, in
// the shape of the JS hosts' (runner.mjs `hostReport`), with what only this
// side knows filled in: the wasmtime version, whether the composed file nests
// the core the run reported, and TCP echo through the echo server.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { coreModules, nestedComponents } from '../../../rust-core/wasi/nested.mjs';
import { execute } from '../process.mjs';
import { echoCheck } from './echo.mjs';

/**
 * Runs `wasmtime run <component>` and resolves to the report. `wasmtime` is
 * the CLI's path, `component` the composed driver's, `coreComponent` the
 * core component's (build/core.component.wasm), `echoServer` and
 * `echoClient` the composed echo server's and client's (optional: without
 * them the report has no TCP entry). Throws,
 * with wasmtime's stderr, if wasmtime fails or prints no report.
 *
 * `componentSha256` is the sha256 the run reports: the build embeds the hash
 * of the core component it composes in. `coreComponentInComposed` says that
 * the composed file nests a component with exactly that hash, and that it
 * is `coreComponent`'s. `compiled` lists that nested component's core
 * modules, the bytes wasmtime compiles for the core, named as jco names
 * them (core.core.wasm, ...), in the shape of the JS hosts' `compiled`.
 */
export async function runWasmtime({ wasmtime, component, coreComponent, echoServer, echoClient, timeoutMs = 120_000 }) {
  const version = await execute(wasmtime, ['--version'], { timeoutMs });
  if (version.code !== 0)
    throw new Error(`${wasmtime} --version failed (${version.signal ?? version.code}):\n${version.stderr}`);
  const run = await execute(wasmtime, ['run', component], { timeoutMs });
  if (run.code !== 0) {
    throw new Error(`${wasmtime} run ${component} exited with ${run.signal ?? run.code}:\n${run.stderr.slice(-4000)}`);
  }
  const line = run.stdout.trim().split('\n').pop();
  let report;
  try {
    report = JSON.parse(line);
  } catch {
    throw new Error(
      `${wasmtime} run ${component}: no JSON report on stdout:\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`,
    );
  }
  const nested = nestedComponents(readFileSync(component));
  const core = nested.find((c) => c.sha256 === report.componentSha256);
  const compiled =
    core === undefined
      ? []
      : coreModules(core.bytes).map(({ index, sha256 }) => ({
          file: `core.core${index === 0 ? '' : index + 1}.wasm`,
          sha256,
          from: `${component}, nested in the core component`,
        }));
  const coreSha256 = createHash('sha256').update(readFileSync(coreComponent)).digest('hex');
  const echo =
    echoServer === undefined
      ? undefined
      : { 'wasi-poll': await echoCheck({ wasmtime, component: echoServer, client: echoClient }) };
  return {
    host: report.host,
    version: version.stdout.trim(),
    autoBackend: report.autoBackend,
    componentSha256: report.componentSha256,
    coreComponentInComposed: report.componentSha256 === coreSha256 && core !== undefined,
    compiled,
    results: report.results,
    ...(echo === undefined ? {} : { echo }),
  };
}
