// The HTTP server (its Wasm parser included) under Node, Deno, Bun, workerd
// and Chromium, on the virtual backend's in-memory network: a chunked POST
// answered, a request without Host refused.
import { test } from './harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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
    const { chromium } = await import('playwright-core');
    const types = {
      '.js': 'text/javascript',
      '.mjs': 'text/javascript',
      '.html': 'text/html',
      '.wasm': 'application/wasm',
    };
    const files = createHttpServer((request, response) => {
      const file = join(root, normalize(new URL(request.url, 'http://localhost').pathname));
      if (relative(root, file).startsWith('..') || !existsSync(file)) {
        response.writeHead(404);
        response.end();
        return;
      }
      response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      response.end(readFileSync(file));
    });
    await new Promise((resolve) => files.listen(0, '127.0.0.1', resolve));
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    try {
      // From the modules of dist/, and from the single-file browser bundle.
      for (const query of ['', '?bundle']) {
        const page = await browser.newPage();
        await page.goto(`http://127.0.0.1:${files.address().port}/test/fixtures/http-browser.html${query}`);
        await page.waitForFunction(() => window.report !== undefined, null, { timeout: 60_000 });
        const report = await page.evaluate(() => window.report);
        assert.equal(report, EXPECTED, `${query || 'modules'}: ${JSON.stringify(report)}`);
        await page.close();
      }
    } finally {
      await browser.close();
      files.close();
    }
  },
  { timeLimitMs: 120_000 },
);

test.run();
