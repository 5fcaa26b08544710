// Runs the conformance vectors on every host and collects their reports.
// Node, Deno and Bun run hosts/script.mjs; workerd serves hosts/worker.mjs
// from a generated config; Chromium loads hosts/browser.html over local HTTP;
// wasmtime runs the composed driver component (wasmtime/run.mjs).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execute } from './process.mjs';
import { inChromium } from '../chromium.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'node_modules/.bin');
const GENERATED = join(ROOT, 'ts-host/dist/generated');

/** The vectors, by file name without `.json`. */
export function loadVectors() {
  const dir = join(ROOT, 'test/conformance/vectors');
  const vectors = {};
  for (const file of readdirSync(dir).sort()) {
    if (file.endsWith('.json')) vectors[file.slice(0, -5)] = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  }
  return vectors;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** sha256 of the core component `make` built. */
export function builtComponentSha256() {
  return sha256(readFileSync(join(ROOT, 'build/core.component.wasm')));
}

/**
 * The core modules `make` built (ts-host/dist/generated), by file: the
 * sha256 each JS host must report for the bytes it compiled, the names they
 * export, and whether the core component contains them byte for byte.
 */
export async function builtCoreModules() {
  const component = readFileSync(join(ROOT, 'build/core.component.wasm'));
  const modules = {};
  for (const file of ['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm']) {
    const bytes = readFileSync(join(GENERATED, file));
    modules[file] = {
      sha256: sha256(bytes),
      exports: WebAssembly.Module.exports(await WebAssembly.compile(bytes)).map((e) => `${e.kind} ${e.name}`),
      inComponent: component.indexOf(bytes) >= 0,
    };
  }
  return modules;
}

/** Runs `command` in the repository; resolves to its stdout, rejects with its stderr on failure. */
async function run(command, args) {
  const { code, signal, stdout, stderr } = await execute(command, args, { cwd: ROOT });
  if (code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited with ${signal ?? code}:\n${stderr.slice(-4000)}`);
  return stdout;
}

/** The last line of `stdout` as JSON (hosts may print warnings before it). */
function lastJson(stdout, host) {
  const line = stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${host}: no JSON report on stdout:\n${stdout.slice(-2000)}`);
  }
}

/** A scratch file holding every vector, for the hosts that read a file. */
function vectorsFile(dir) {
  const file = join(dir, 'vectors.json');
  writeFileSync(file, JSON.stringify(loadVectors()));
  return file;
}

async function scriptHost(host, command, args) {
  const dir = mkdtempSync(join(tmpdir(), `wasmloop-${host}-`));
  try {
    const script = join(ROOT, 'test/conformance/hosts/script.mjs');
    return lastJson(await run(command, [...args, script, vectorsFile(dir)]), host);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const runNode = () => scriptHost('node', process.execPath, []);
export const runDeno = () =>
  scriptHost('deno', join(BIN, 'deno'), [
    'run',
    '--allow-read',
    '--allow-net',
    '--allow-env',
    '--allow-ffi',
    '--allow-sys',
  ]);
export const runBun = () => scriptHost('bun', join(BIN, 'bun'), []);

/** A TCP port free right now on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * workerd: a config binding the package's workerd entry as the module
 * 'wasmloop' and the core's Wasm as `wasm` modules under the package's
 * subpaths (docs/hosts.md gives users the same config), beside the runner
 * and the vectors. The files are copied beside the config because workerd
 * embeds only paths below it. workerd gives no bytes back from a compiled
 * module, so the report's `embedded` holds the sha256 of the very files the
 * config embeds as `wasm` modules.
 */
export async function runWorkerd() {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-workerd-'));
  const modules = [
    ['worker.mjs', 'esModule', join(ROOT, 'test/conformance/hosts/worker.mjs')],
    ['runner.mjs', 'esModule', join(ROOT, 'test/conformance/runner.mjs')],
    ['vectors.json', 'json', vectorsFile(dir)],
    ['wasmloop', 'esModule', join(ROOT, 'ts-host/dist/wasmloop.workerd.js')],
    ...['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'].map((f) => [
      `wasmloop/wasm/${f}`,
      'wasm',
      join(GENERATED, f),
    ]),
  ];
  // Each file under its module's name, flattened ('wasmloop' is a module and
  // a prefix of others).
  const embedPath = (name) => `worker/${name.replaceAll('/', '__')}`;
  mkdirSync(join(dir, 'worker'));
  for (const [name, , source] of modules) cpSync(source, join(dir, embedPath(name)));
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [
${modules.map(([name, type]) => `    (name = ${JSON.stringify(name)}, ${type} = embed ${JSON.stringify(embedPath(name))}),`).join('\n')}
  ],
  compatibilityDate = "2026-11-01",
  globalOutbound = "loopback",
);
`,
  );
  // An echo server outside the worker, which the worker may connect to.
  const echo = createNetServer((socket) => socket.pipe(socket));
  await new Promise((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const child = spawn(join(BIN, 'workerd'), ['serve', join(dir, 'config.capnp')], { cwd: dir });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${log}`);
      try {
        const response = await fetch(`http://127.0.0.1:${port}/?echoPort=${echo.address().port}`);
        const report = await response.json();
        report.embedded = Object.fromEntries(
          modules
            .filter(([, type]) => type === 'wasm')
            .map(([name]) => [name.split('/').pop(), sha256(readFileSync(join(dir, embedPath(name))))]),
        );
        report.version = (await run(join(BIN, 'workerd'), ['--version'])).trim();
        return report;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`workerd did not answer: ${error.message}\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    child.kill('SIGKILL');
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Chromium, headless: a page with no Node APIs imports the host from
 * ts-host/dist over HTTP and runs the vectors; the report is read back from
 * window.report.
 */
export async function runChromium() {
  const vectors = JSON.stringify(loadVectors());
  const { version, pages } = await inChromium(ROOT, ['test/conformance/hosts/browser.html'], {
    '/vectors.json': ['application/json', vectors],
  });
  const [{ report, errors }] = pages;
  if (errors.length > 0) report.pageErrors = errors;
  report.version = version;
  return report;
}

/**
 * wasmtime: `make` builds the composed driver (imports -> core -> driver)
 * and the echo server and client, installs the CLI, and passes their paths
 * in WASMTIME, WASMTIME_CONFORMANCE, WASI_ECHO_SERVER and WASI_ECHO_CLIENT (see
 * rust-core/wasi/rules.mk and wasmtime/rules.mk).
 */
export async function runWasmtime() {
  const {
    WASMTIME: wasmtime,
    WASMTIME_CONFORMANCE: component,
    WASI_ECHO_SERVER: echoServer,
    WASI_ECHO_CLIENT: echoClient,
  } = process.env;
  if (!wasmtime || !component || !echoServer || !echoClient) {
    throw new Error(
      'wasmtime: WASMTIME, WASMTIME_CONFORMANCE, WASI_ECHO_SERVER and WASI_ECHO_CLIENT are not set; run this through `make test-hosts`',
    );
  }
  const { runWasmtime: run } = await import('./wasmtime/run.mjs');
  const report = await run({
    wasmtime: resolve(ROOT, wasmtime),
    component: resolve(ROOT, component),
    coreComponent: join(ROOT, 'build/core.component.wasm'),
    echoServer: resolve(ROOT, echoServer),
    echoClient: resolve(ROOT, echoClient),
  });
  // The composed binary nests the core component itself, byte for byte; the
  // sha256 is of build/core.component.wasm, read by Node (the CLI reports
  // none of the bytes it compiled).
  return {
    ...report,
    // No JS backends here: the wasmloop-wasi crate is the host. Its TCP
    // entry is report.echo['wasi-poll'] (the echo server, from Node).
    backendsNote:
      "`wasi-poll`: wasmloop-wasi's readiness backend on WASI 0.2, real time (`wasi:clocks/monotonic-clock`), readiness from `wasi:io/poll`, TCP on `wasi:sockets`; `virtual`: virtual time (the imports component's clock)",
  };
}

/** Every host, in the README's order: name → function resolving to its report. */
export const HOSTS = {
  node: runNode,
  deno: runDeno,
  bun: runBun,
  workerd: runWorkerd,
  chromium: runChromium,
  wasmtime: runWasmtime,
};
