// One core, six hosts: the conformance vectors (test/conformance/vectors) on
// Node, Deno, Bun, workerd, Chromium and the wasmtime CLI. Every host must
// pass every vector, report the sha256 of the very core component `make`
// built, and refuse what it cannot do with the loop's own errors. The reports
// land in build/hosts-report.json, from which test/conformance/table.mjs
// writes the README's host table.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOSTS, ROOT, builtComponentSha256, loadVectors } from './conformance/hosts.mjs';

/**
 * What each host offers. `backends`: the built-in backends that start there
 * (the others must refuse with a BackendError saying why); `auto`: the one
 * `auto` picks; `servers`: whether a TCP server can run on `auto` (false:
 * createServer must throw NotSupportedError); `clients`: whether, without
 * servers, it connects out to an echo server the test runs.
 */
const EXPECTED = {
  node: { backends: ['selector', 'completion', 'virtual', 'clock'], auto: 'selector', servers: true },
  deno: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: true },
  bun: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: true },
  workerd: { backends: ['completion', 'virtual', 'clock'], auto: 'completion', servers: false, clients: true },
  chromium: { backends: ['virtual', 'clock'], auto: 'clock', servers: false },
  wasmtime: { backends: ['virtual', 'clock'], auto: 'clock', servers: false },
};

const vectors = loadVectors();
const builtSha = builtComponentSha256();
const reports = {};

const hosts = suite('hosts: the conformance vectors on every host');

hosts.after(() => {
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  writeFileSync(
    join(ROOT, 'build/hosts-report.json'),
    JSON.stringify({ date: new Date().toISOString(), componentSha256: builtSha, vectors: Object.keys(vectors), reports }, null, 2),
  );
});

for (const [name, runHost] of Object.entries(HOSTS)) {
  const expected = EXPECTED[name];
  hosts(`${name}: every vector passes, on the core make built`, async () => {
    const report = await runHost();
    reports[name] = report;
    assert.not.ok(report.error, `${name} failed to run: ${report.error}`);
    assert.not.ok(report.pageErrors, `${name}: errors in the page: ${report.pageErrors}`);
    assert.is(report.componentSha256, builtSha, `${name} loaded a different core component`);
    assert.ok(report.coreModuleInComponent, `${name}: its core Wasm is not the component's own`);

    const expectedCount = Object.values(vectors).filter((v) => !v.virtualOnly).length + Object.keys(vectors).length;
    assert.is(report.results.length, expectedCount, `${name} ran every vector on auto and virtual`);
    for (const result of report.results) {
      assert.equal(result.got, result.expect, `${name}/${result.backend}/${result.name}`);
    }

    assert.is(report.autoBackend, expected.auto, `${name}: auto picks ${expected.auto}`);
    if (report.backends !== undefined) {
      for (const [backend, state] of Object.entries(report.backends)) {
        if (backend === 'auto') continue;
        const starts = expected.backends.includes(backend);
        assert.is(state.starts, starts, `${name}: backend ${backend} ${starts ? 'starts' : 'is refused'}: ${state.error ?? ''}`);
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
    // A JS host on a backend without a network says so (wasmtime's driver has
    // no I/O API to ask).
    if (expected.auto === 'clock' && name !== 'wasmtime') assert.match(report.autoTcp, /^NotSupportedError: /);
  });
}

hosts('every host reported the same core component', () => {
  const hashes = new Set(Object.values(reports).map((r) => r.componentSha256));
  assert.is(Object.keys(reports).length, Object.keys(HOSTS).length, 'every host ran');
  assert.equal([...hashes], [builtSha]);
});

hosts.run();
