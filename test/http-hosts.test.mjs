// The HTTP server (its Wasm parser included) under Node, Deno, Bun, workerd
// and Chromium, on the virtual backend's in-memory network: a chunked POST
// answered, a request without Host refused.
import { test } from './harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inChromium } from './chromium.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const EXPECTED = { statuses: [200, 400], body: true };
const script = 'test/fixtures/http-virtual.mjs';
const hosts = {
  node: [process.execPath, [script]],
  deno: ['node_modules/.bin/deno', ['run', '-A', script]],
  bun: ['node_modules/.bin/bun', [script]],
};

for (const [host, [command, args]] of Object.entries(hosts)) {
  test(`serve() on ${host}`, () => {
    const { FORCE_COLOR, ...env } = process.env;
    const out = execFileSync(command, args, { cwd: root, encoding: 'utf8', env: { ...env, NO_COLOR: '1' } });
    assert.equal(JSON.parse(out.trim().split('\n').pop()), EXPECTED);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// workerd and Chromium take seconds to start, many more on a loaded machine:
// these two cases have a longer limit against a hang.
test(
  'serve() on workerd, the parser handed in as a module',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmloop-http-workerd-'));
    const modules = [
      ['test/fixtures/http-worker.mjs', 'esModule'],
      ['test/fixtures/http-scenario.mjs', 'esModule'],
      ...readdirSync(join(root, 'ts-host/dist'), { recursive: true })
        .filter((f) => f.endsWith('.js') && f !== 'cli.js')
        .map((f) => [`ts-host/dist/${f}`, 'esModule']),
      ...['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'].map((f) => [`ts-host/dist/generated/${f}`, 'wasm']),
      ['ts-host/dist/http/http-parser.wasm', 'wasm'],
    ];
    for (const [name] of modules) {
      mkdirSync(join(dir, 'worker', dirname(name)), { recursive: true });
      cpSync(join(root, name), join(dir, 'worker', name));
    }
    const port = await freePort();
    writeFileSync(
      join(dir, 'config.capnp'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [
${modules.map(([name, type]) => `    (name = ${JSON.stringify(name)}, ${type} = embed ${JSON.stringify(`worker/${name}`)}),`).join('\n')}
  ],
  compatibilityDate = "2026-11-01",
);
`,
    );
    const child = spawn(join(root, 'node_modules/.bin/workerd'), ['serve', join(dir, 'config.capnp')], { cwd: dir });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    try {
      let report = null;
      // Until workerd listens (or exits): each attempt waits for its answer.
      while (report === null) {
        if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${log}`);
        report = await fetch(`http://127.0.0.1:${port}/`).then(
          async (r) => {
            const t = await r.text();
            try {
              return JSON.parse(t);
            } catch {
              throw new Error(`workerd answered ${t}:\n${log}`);
            }
          },
          (e) => (e.message.startsWith('workerd answered') ? Promise.reject(e) : null),
        );
        if (report === null) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(report, EXPECTED, JSON.stringify(report));
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeLimitMs: 120_000 },
);

test(
  'serve() in Chromium (modules and the bundle), the parser fetched beside the server code',
  async () => {
    // From the modules of dist/, and from the single-file browser bundle.
    const queries = ['', '?bundle'];
    const { pages } = await inChromium(
      root,
      queries.map((query) => `test/fixtures/http-browser.html${query}`),
    );
    pages.forEach(({ report }, i) => {
      assert.equal(report, EXPECTED, `${queries[i] || 'modules'}: ${JSON.stringify(report)}`);
    });
  },
  { timeLimitMs: 120_000 },
);

test.run();
