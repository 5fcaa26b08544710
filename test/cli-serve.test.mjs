// `wasmloop serve`, end to end: the command spawned as a process, requests
// made over TCP (node:http without an agent, Node's fetch, raw sockets),
// each run checked by PID for processes left behind.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NET_COMPLETION } from './helpers.mjs';
import { LIMIT_MS, freePort, root, run, runAsync, withCommand } from './fixtures/command.mjs';

const APPS = './test/fixtures/serve-apps.mjs';
const HONO = './test/fixtures/hono-app.mjs';
const FIXTURES = join(root, 'test/fixtures');
/** uvicorn's access log line. */
const ACCESS = /^INFO: {5}127\.0\.0\.1:\d+ - "(\S+) (\S+) HTTP\/(1\.[01])" (\d{3}) (.*)$/gm;

// Each case spawns the command (several times, on each backend): a generous limit against hangs, not a speed figure.
const cli = suite('wasmloop serve', {}, { timeLimitMs: 120_000 });

/** The port a started command serves on, from its "serving on" line. */
async function servingPort(server) {
  return Number((await server.waitFor(/serving on http:\/\/127\.0\.0\.1:(\d+) /, 'err'))[1]);
}

/** One request on a connection of its own; resolves with status, headers and body. */
function request(target, path, { method = 'GET', body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const where = typeof target === 'number' ? { host: '127.0.0.1', port: target } : { socketPath: target };
    const req = http.request({ ...where, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(LIMIT_MS, () => req.destroy(new Error(`no response within ${LIMIT_MS} ms`)));
    req.end(body);
  });
}

/**
 * A raw connection: `send(text)`, `response()` resolves with the next whole
 * response (by content-length), `closed` once the server closed it.
 */
function connect(port) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let buffer = '';
  let wake = () => undefined;
  socket.setEncoding('latin1');
  socket.on('data', (d) => {
    buffer += d;
    wake();
  });
  socket.on('error', () => undefined);
  const closed = new Promise((resolve) => socket.on('close', resolve));
  const response = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no whole response within ${LIMIT_MS} ms: ${JSON.stringify(buffer)}`)),
        LIMIT_MS,
      );
      const check = () => {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const body = buffer.slice(end + 4, end + 4 + length);
        buffer = buffer.slice(end + 4 + length);
        clearTimeout(timer);
        wake = () => undefined;
        resolve({ status: Number(head.slice(9, 12)), head, body });
      };
      wake = check;
      check();
    });
  const send = (text) => socket.write(text);
  return { socket, send, response, closed, rest: () => buffer };
}

const refused = (port) =>
  new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', (e) => resolve(e.code));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });

cli('--help documents every flag', () => {
  const r = run(['serve', '--help']);
  assert.is(r.status, 0);
  for (const flag of [
    '--host',
    '--port',
    '--uds',
    '--interface',
    '--timeout-keep-alive',
    '--timeout-request-header',
    '--limit-concurrency',
    '--access-log',
    '--no-access-log',
    '--backend',
    '--loop',
    '--debug',
    '--slow-callback-ms',
    '--stats',
    '--workers',
    '--shutdown-timeout-ms',
    '--max-failed-starts',
  ]) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
  assert.match(run(['--help']).stdout, /serve {2,}serve a module's fetch handler/);
});

/** Each case: the arguments, the one line expected on stderr (exit 2), and the working directory. */
const USAGE_ERRORS = [
  [['serve'], /^wasmloop: missing <module>\[:<export>\] \(see --help\)$/],
  [['serve', APPS, HONO], /^wasmloop: unexpected argument '.*hono-app.mjs' \(one <module>\[:<export>\] only\)$/],
  [['serve', './test/fixtures/missing.mjs'], /^wasmloop: cannot find module '.\/test\/fixtures\/missing.mjs'$/],
  [
    ['serve', 'serve-apps'],
    /^wasmloop: cannot find module 'serve-apps' \(did you mean '.\/serve-apps.mjs'\?\)$/,
    FIXTURES,
  ],
  [
    ['serve', './test/fixtures/apps.mjs'],
    /^wasmloop: module '.\/test\/fixtures\/apps.mjs' has no default export: export default \{ fetch \}, or name the export/,
  ],
  [['serve', `${APPS}:nope`], /^wasmloop: module '.\/test\/fixtures\/serve-apps.mjs' has no export 'nope'$/],
  [['serve', `${APPS}:notAHandler`], /^wasmloop: export 'notAHandler' of '.*' is not a fetch handler: it is number/],
  [
    ['serve', APPS, '--interface', 'node'],
    /^wasmloop: the default export of '.*' is not a \(req, res\) listener for --interface node: it is an object with fetch\(\) \(a fetch handler: leave out --interface node\)$/,
  ],
  [['serve', APPS, '--interface', 'asgi3'], /^wasmloop: --interface must be one of fetch, node, got 'asgi3'$/],
  [
    ['serve', APPS, '--timeout-keep-alive', '0'],
    /^wasmloop: --timeout-keep-alive must be an integer from 1 to \d+, got '0'$/,
  ],
  [
    ['serve', APPS, '--timeout-request-header', '2.5'],
    /^wasmloop: --timeout-request-header must be an integer .*, got '2.5'$/,
  ],
  [
    ['serve', APPS, '--limit-concurrency', '0'],
    /^wasmloop: --limit-concurrency must be an integer from 1 to \d+, got '0'$/,
  ],
  [['serve', APPS, '--no-access-log=1'], /^wasmloop: --no-access-log takes no value, got '--no-access-log=1'$/],
  [
    ['serve', APPS, '--timeout-keepalive', '3'],
    /^wasmloop: unknown option '--timeout-keepalive' \(did you mean '--timeout-keep-alive'\?\)$/,
  ],
  [
    ['serve', APPS, '--uds', '/tmp/x.sock', '--port', '80'],
    /^wasmloop: --port and --uds: give one place to listen, not both$/,
  ],
  [['serve', APPS, '--fd', '3', '--port', '80'], /^wasmloop: --fd and --port: give one place to listen, not both$/],
  [['serve', APPS, '--workers', '2', '--backend', 'virtual'], /--workers needs a real backend/],
  [['serve', APPS, '--loop', 'uvloop'], /^wasmloop: --backend: unknown backend 'uvloop'/],
];

cli('every usage error, and a module without a handler, is one line naming what is wrong, exit 2', async () => {
  const results = [];
  for (let i = 0; i < USAGE_ERRORS.length; i += 4) {
    results.push(...(await Promise.all(USAGE_ERRORS.slice(i, i + 4).map(([args, , cwd]) => runAsync(args, { cwd })))));
  }
  for (const [i, [args, pattern]] of USAGE_ERRORS.entries()) {
    const r = results[i];
    const what = args.join(' ');
    assert.is(r.status, 2, `${what}: exit ${r.status}, ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], pattern, what);
  }
});

cli("serves the default export's fetch on each backend, with uvicorn's access log on stdout", async () => {
  for (const backend of ['auto', 'selector', 'completion', NET_COMPLETION]) {
    await withCommand(['serve', APPS, '--port', '0', '--backend', backend], async (server) => {
      const port = await servingPort(server);
      const r = await request(port, '/some/where?x=1');
      assert.is(r.status, 200, backend);
      assert.is(r.body, 'hello /some/where?x=1 from 127.0.0.1');
      const posted = await request(port, '/echo', { method: 'POST', body: 'a body' });
      assert.is(posted.body, 'POST a body');
      assert.is((await request(port, '/missing')).status, 404);
      assert.is((await request(port, '/fails')).status, 500);
      const lines = (await server.waitFor(/(?:INFO:.*\n){4}/, 'out'))[0];
      const logged = [...lines.matchAll(ACCESS)].map((m) => [m[1], m[2], m[3], m[4], m[5]]);
      assert.equal(logged, [
        ['GET', '/some/where?x=1', '1.1', '200', 'OK'],
        ['POST', '/echo', '1.1', '200', 'OK'],
        ['GET', '/missing', '1.1', '404', 'Not Found'],
        ['GET', '/fails', '1.1', '500', 'Internal Server Error'],
      ]);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
      await server.noneLeft();
    });
  }
});

cli('named exports: a function is the handler, an object its fetch; --no-access-log is quiet', async () => {
  await withCommand(['serve', `${APPS}:api`, '--port', '0', '--no-access-log'], async (server) => {
    const port = await servingPort(server);
    const r = await request(port, '/items', { method: 'DELETE' });
    assert.equal(JSON.parse(r.body), { method: 'DELETE', path: '/items' });
    assert.match(r.headers['content-type'], /application\/json/);
    // A request on HTTP/1.0, closing, so that any log line would be out before the exit.
    const raw = connect(port);
    raw.send('GET /old HTTP/1.0\r\n\r\n');
    await raw.closed;
    server.child.kill('SIGTERM');
    await server.exited;
    assert.not.match(server.output().out, /INFO:/);
    await server.noneLeft();
  });
  await withCommand(['serve', `${APPS}:object`, '--port', '0', '--access-log'], async (server) => {
    const port = await servingPort(server);
    assert.is((await request(port, '/')).body, 'from object');
    const raw = connect(port);
    raw.send('GET /old?q HTTP/1.0\r\n\r\n');
    await raw.closed;
    await server.waitFor(/"GET \/old\?q HTTP\/1\.0" 200 OK\n/, 'out');
    server.child.kill('SIGTERM');
    await server.exited;
    await server.noneLeft();
  });
});

cli('a bare file name is the file in the working directory (`serve serve-apps.mjs`)', () =>
  withCommand(
    ['serve', 'serve-apps.mjs', '--port', '0'],
    async (server) => {
      const port = await servingPort(server);
      assert.is((await request(port, '/')).body, 'hello / from 127.0.0.1');
      server.child.kill('SIGINT');
      assert.is((await server.exited).code, 0);
      await server.noneLeft();
    },
    { cwd: FIXTURES },
  ),
);

cli('an unmodified Hono app from npm: routes, params, JSON, a POST body, middleware, 404', () =>
  withCommand(['serve', HONO, '--port', '0'], async (server) => {
    const port = await servingPort(server);
    const base = `http://127.0.0.1:${port}`;
    const home = await fetch(`${base}/`);
    assert.is(home.status, 200);
    assert.is(await home.text(), 'Hello Hono!');
    assert.is(home.headers.get('x-served-by'), 'hono', 'the middleware ran');
    const user = await fetch(`${base}/users/42?q=x`);
    assert.equal(await user.json(), { id: '42', q: 'x' });
    const created = await fetch(`${base}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ada' }),
    });
    assert.is(created.status, 201);
    assert.equal(await created.json(), { created: 'ada' });
    const missing = await fetch(`${base}/nowhere`);
    assert.is(missing.status, 404);
    assert.is(await missing.text(), 'no route for /nowhere');
    assert.is(missing.headers.get('x-served-by'), 'hono');
    await server.waitFor(/"GET \/nowhere HTTP\/1\.1" 404 Not Found\n/, 'out');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  }),
);

for (const [name, spec, extra] of [
  ['fetch', APPS, []],
  ['node', `${APPS}:listener`, ['--interface', 'node']],
]) {
  cli(
    `graceful shutdown (--interface ${name}): idle connections close, the request in flight finishes, new ones are refused`,
    () =>
      withCommand(['serve', spec, '--port', '0', ...extra], async (server) => {
        const port = await servingPort(server);
        const idle = connect(port);
        idle.send('GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
        assert.is((await idle.response()).status, 200);
        const busy = connect(port);
        busy.send('GET /hold HTTP/1.1\r\nhost: x\r\n\r\n');
        await server.waitFor(/holding \(pid/, 'out');
        server.child.kill('SIGTERM');
        await server.waitFor(/SIGTERM: .*closing/, 'err');
        await idle.closed;
        const held = await busy.response();
        assert.is(held.status, 200);
        assert.match(held.head, /\r\nconnection: close\r\n/i);
        await busy.closed;
        assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
        assert.is(await refused(port), 'ECONNREFUSED');
        await server.noneLeft();
      }),
  );
}

cli('--limit-concurrency: a connection past the limit is answered 503', async () => {
  for (const extra of [[], ['--interface', 'node']]) {
    const spec = extra.length === 0 ? APPS : `${APPS}:listener`;
    await withCommand(['serve', spec, '--port', '0', '--limit-concurrency', '1', ...extra], async (server) => {
      const port = await servingPort(server);
      const first = connect(port);
      first.send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.is((await first.response()).status, 200);
      const second = connect(port);
      second.send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      const refusedResponse = await second.response();
      assert.is(refusedResponse.status, 503, extra.join(' '));
      await second.closed;
      first.socket.end();
      await first.closed;
      server.child.kill('SIGTERM');
      assert.is((await server.exited).code, 0);
      await server.noneLeft();
    });
  }
});

cli('--timeout-keep-alive closes an idle connection; --timeout-request-header answers a slow head 408', async () => {
  for (const extra of [[], ['--interface', 'node']]) {
    const spec = extra.length === 0 ? APPS : `${APPS}:listener`;
    const args = ['serve', spec, '--port', '0', '--timeout-keep-alive', '1', '--timeout-request-header', '1', ...extra];
    await withCommand(args, async (server) => {
      const port = await servingPort(server);
      const idle = connect(port);
      idle.send('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.is((await idle.response()).status, 200);
      await idle.closed;
      const slow = connect(port);
      slow.send('GET / HTTP/1.1\r\nhos');
      await slow.closed;
      assert.match(slow.rest(), /^HTTP\/1\.1 408 /, `${extra.join(' ')}: ${JSON.stringify(slow.rest())}`);
      server.child.kill('SIGTERM');
      assert.is((await server.exited).code, 0);
      await server.noneLeft();
    });
  }
});

cli('--workers 2 share the port; SIGTERM stops both', async () => {
  // With SO_REUSEPORT, --port 0 would give each worker a port of its own.
  const port = await freePort();
  await withCommand(['serve', APPS, '--port', String(port), '--workers', '2', '--no-access-log'], async (server) => {
    await server.waitFor(/serving on .*worker 1,/, 'err');
    await server.waitFor(/serving on .*worker 2,/, 'err');
    const pids = new Set();
    for (let i = 0; i < 50 && pids.size < 2; i++) pids.add(Number((await request(port, '/pid')).body));
    assert.is(pids.size, 2, 'both workers answered');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  });
});

cli('--uds serves on a Unix socket and removes it; --stats prints the table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-serve-'));
  const path = join(dir, 'app.sock');
  try {
    await withCommand(['serve', APPS, '--uds', path, '--stats'], async (server) => {
      await server.waitFor(/serving on unix:/, 'err');
      const r = await request(path, '/uds');
      assert.is(r.status, 200);
      assert.match(r.body, /^hello \/uds from /);
      await server.waitFor(/^INFO: {5} - "GET \/uds HTTP\/1\.1" 200 OK$/m, 'out');
      server.child.kill('SIGTERM');
      assert.is((await server.exited).code, 0);
      assert.not.ok(existsSync(path), 'the socket file was removed');
      assert.match(server.output().out, /wasmloop stats/);
      await server.noneLeft();
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('--interface node runs a (req, res) listener on the loop: body, status, access log', async () => {
  for (const backend of ['selector', 'completion', NET_COMPLETION]) {
    await withCommand(
      ['serve', `${APPS}:listener`, '--interface', 'node', '--port', '0', '--backend', backend],
      async (server) => {
        const port = await servingPort(server);
        const r = await request(port, '/things', { method: 'PUT', body: 'x'.repeat(100_000) });
        assert.is(r.status, 200);
        assert.is(r.body, `node PUT /things ${'x'.repeat(100_000)} from 127.0.0.1 HTTP/1.1`);
        assert.is((await request(port, '/missing')).status, 404);
        await server.waitFor(/"PUT \/things HTTP\/1\.1" 200 OK\n.*"GET \/missing HTTP\/1\.1" 404 Not Found\n/, 'out');
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
        await server.noneLeft();
      },
    );
  }
});

cli.run();
