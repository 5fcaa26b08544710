// One core, six hosts: the conformance vectors (test/conformance/vectors) on
// Node, Deno, Bun, workerd, Chromium and the wasmtime CLI. Every host must
// run exactly the vectors on disk and log what their files expect, compile
// the very core modules `make` built (each JS host hashes the bytes its
// loader compiled, as it compiles them), and refuse what it cannot do with
// the loop's own errors. The reports land in build/hosts-report.json, from
// which `make readme` writes the README's host table.
//
// WASMLOOP_HOSTS=node,deno runs only those hosts; HOSTS_REPORT names the
// report's file instead (`make test-node-versions` runs the Node host on
// each Node version, each into a report of its own).
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HOSTS, ROOT, builtComponentSha256, builtCoreModules, loadVectors } from './conformance/hosts.mjs';

/**
 * What each host offers. `backends`: the built-in backends that start there
 * (the others must refuse with a BackendError saying why); `auto`: the one
 * `auto` picks; `servers`: whether a TCP server can run on `auto` (false:
 * createServer must throw NotSupportedError); `clients`: whether, without
 * servers, it connects out to an echo server the test runs. wasmtime has no
 * JavaScript backends: its host is the wasmloop-wasi crate, whose own
 * readiness backend (`wasi-poll`: real time, wasi:io/poll, TCP on
 * wasi:sockets) the vectors run on as `auto`, beside `virtual`; its TCP is
 * the echo server's (report.echo['wasi-poll']).
 */
const EXPECTED = {
  node: { backends: ['selector', 'completion', 'virtual', 'clock'], auto: 'selector', servers: true },
  deno: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: true },
  bun: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: true },
  workerd: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: false, clients: true },
  chromium: { backends: ['virtual', 'clock'], auto: 'clock', servers: false },
  wasmtime: { backends: ['wasi-poll', 'virtual'], auto: 'wasi-poll', servers: true },
};

const selected = process.env.WASMLOOP_HOSTS ? process.env.WASMLOOP_HOSTS.split(',') : Object.keys(HOSTS);
for (const name of selected)
  if (!(name in HOSTS))
    throw new Error(`WASMLOOP_HOSTS: unknown host '${name}' (known: ${Object.keys(HOSTS).join(', ')})`);
const reportFile = join(ROOT, process.env.HOSTS_REPORT ?? 'build/hosts-report.json');

const vectors = loadVectors();
const builtSha = builtComponentSha256();
const built = await builtCoreModules();
const reports = {};

/** The (backend, vector) pairs a host must run: every vector on `auto` (but virtual-time ones) and on `virtual`. */
const expectedRuns = [
  ...Object.keys(vectors)
    .filter((name) => !vectors[name].virtualOnly)
    .map((name) => `auto/${name}`),
  ...Object.keys(vectors).map((name) => `virtual/${name}`),
].sort();

// Each case starts a host (a browser, workerd, wasmtime compiling the core):
// seconds each, many more on a loaded machine, so the limit against a hang
// is long.
const hosts = suite('hosts: the conformance vectors on every host', {}, { timeLimitMs: 120_000 });

hosts.after(() => {
  mkdirSync(dirname(reportFile), { recursive: true });
  writeFileSync(
    reportFile,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        componentSha256: builtSha,
        coreModules: built,
        vectors: Object.keys(vectors),
        reports,
      },
      null,
      2,
    ),
  );
});

hosts("the core modules make built are the component's own, byte for byte", () => {
  for (const [file, module] of Object.entries(built))
    assert.ok(module.inComponent, `${file} is not in build/core.component.wasm`);
});

for (const name of selected) {
  const runHost = HOSTS[name];
  const expected = EXPECTED[name];
  hosts(`${name}: every vector passes, on the core make built`, async () => {
    const report = await runHost();
    reports[name] = report;
    assert.not.ok(report.error, `${name} failed to run: ${report.error}`);
    assert.not.ok(report.pageErrors, `${name}: errors in the page: ${report.pageErrors}`);

    // The core: what this host compiled is what make built.
    if (name === 'wasmtime') {
      assert.is(report.componentSha256, builtSha, 'wasmtime ran a composition of a different core component');
      assert.ok(report.coreComponentInComposed, 'the composed component nests the core component unchanged');
    } else if (name === 'workerd') {
      // workerd compiles the files its config embeds and hands back no bytes.
      for (const [file, module] of Object.entries(built)) {
        assert.is(report.embedded?.[file], module.sha256, `workerd's config embedded a different ${file}`);
        assert.equal(
          report.boundExports?.[file],
          module.exports,
          `the ${file} workerd compiled exports what make's does`,
        );
      }
    } else {
      assert.ok(Array.isArray(report.compiled), `${name} reports what its loader compiled`);
      assert.equal(
        report.compiled.map((m) => m.file),
        Object.keys(built),
        `${name} compiled every core module`,
      );
      for (const module of report.compiled) {
        assert.is(
          module.sha256,
          built[module.file].sha256,
          `${name} compiled a different ${module.file} (from ${module.from})`,
        );
      }
    }

    // The vectors: exactly those on disk, each logging what its file expects.
    const runs = report.results.map((r) => `${r.backend}/${r.name}`).sort();
    const missing = expectedRuns.filter((r) => !runs.includes(r));
    const extra = runs.filter((r) => !expectedRuns.includes(r));
    assert.equal([missing, extra], [[], []], `${name}: vectors missing (first) or not on disk (second)`);
    assert.is(new Set(runs).size, runs.length, `${name} ran each vector once per backend`);
    for (const result of report.results) {
      result.pass = JSON.stringify(result.got) === JSON.stringify(vectors[result.name].expect);
      assert.equal(result.got, vectors[result.name].expect, `${name}/${result.backend}/${result.name}`);
    }

    assert.is(report.autoBackend, expected.auto, `${name}: auto picks ${expected.auto}`);
    if (report.backends !== undefined) {
      for (const [backend, state] of Object.entries(report.backends)) {
        if (backend === 'auto') continue;
        const starts = expected.backends.includes(backend);
        assert.is(
          state.starts,
          starts,
          `${name}: backend ${backend} ${starts ? 'starts' : 'is refused'}: ${state.error ?? ''}`,
        );
        if (!starts) assert.match(state.error, /^BackendError: backend '\w+' cannot start here: .+/);
      }
    }

    // Every backend with a network echoes bytes intact, or says it cannot.
    for (const [backend, echo] of Object.entries(report.echo ?? {})) {
      if (echo.supported === false) {
        assert.is(expected.servers, false, `${name}/${backend}: ${echo.detail}`);
        assert.match(echo.detail, /^NotSupportedError: /);
        if (expected.clients) assert.ok(echo.client?.pass, `${name}/${backend} connecting out: ${echo.client?.detail}`);
      } else {
        assert.ok(echo.pass, `${name}/${backend} echo: ${echo.detail}`);
      }
    }
    // A host whose `auto` has no network says so.
    if (expected.auto === 'clock') assert.match(report.autoTcp, /^NotSupportedError: /);
    // One whose `auto` has it serves and connects.
    if (expected.servers)
      assert.ok(
        Object.values(report.echo ?? {}).some((echo) => echo.pass),
        `${name}: TCP echo on auto`,
      );
  });
}

hosts('every host ran', () => {
  assert.equal(Object.keys(reports).sort(), [...selected].sort());
});

hosts.run();
