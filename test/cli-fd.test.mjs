// `wasmloop run --fd N` and `wasmloop serve --fd N`: serving on a listening
// socket the command inherited, in one process or shared by every worker of
// `--workers`; and `--uds PATH --workers N`, whose primary binds the socket
// once and hands it to the workers. Each case spawns the command with the
// socket as its descriptor 3 (bound here, as a process manager binds it) and
// ends by checking, by PID, that no process of the run is left.
import * as assert from 'uvu/assert';
import { closeSync, existsSync, lstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSelectorAddon } from '../ts-host/dist/backends/selector.js';
import { suite } from './harness.mjs';
import { NET_COMPLETION, backendLabel } from './helpers.mjs';
import { LIMIT_MS, isLive, printedPids, runAsync, withCommand } from './fixtures/command.mjs';

const addon = loadSelectorAddon();
const ECHO = './examples/echo-server.mjs:main';
const SERVE_APP = './test/fixtures/serve-apps.mjs';

/** A listening TCP socket on a free loopback port, as a process manager binds one: { fd, port }. */
function bindTcp() {
  const fd = addon.listen('127.0.0.1', 0, 64);
  assert.ok(fd >= 0, `listen: ${fd}`);
  return { fd, port: Number(addon.address(fd, false).split(' ')[2]) };
}

/** `fn(fd, port)` with a listening TCP socket, closed afterwards (the parent's copy). */
async function withTcpSocket(fn) {
  const { fd, port } = bindTcp();
  try {
    return await fn(fd, port);
  } finally {
    addon.close(fd);
  }
}

/** A temporary directory for one case. */
async function inTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-cli-fd-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the echo server answers `pid\n` with, over TCP (`{ port }`) or a Unix socket (`{ path }`). */
function pidOf(at) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(at.path === undefined ? { host: '127.0.0.1', port: at.port } : { path: at.path });
    let got = '';
    socket.on('data', (d) => {
      got += d;
      if (got.endsWith('\n')) {
        socket.destroy();
        resolve(Number(got.trim()));
      }
    });
    socket.on('error', reject);
    socket.write('pid\n');
  });
}

/** The pids that answer at `at`, asked until `count` different ones did (at most 100 times). */
async function answering(at, count) {
  const pids = new Set();
  for (let i = 0; i < 100 && pids.size < count; i++) pids.add(await pidOf(at));
  return pids;
}

/** An HTTP GET of `path` over TCP (a port) or a Unix socket (a path): the body. */
function get(target, path) {
  return new Promise((resolve, reject) => {
    const where = typeof target === 'number' ? { host: '127.0.0.1', port: target } : { socketPath: target };
    const req = http.request({ ...where, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.setTimeout(LIMIT_MS, () => req.destroy(new Error(`no response within ${LIMIT_MS} ms`)));
    req.end();
  });
}

/** Leaves a socket file at `path` that nothing accepts on: its server is killed before it can remove it. */
function leaveStaleSocket(path) {
  const script = "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";
  const r = spawnSync(process.execPath, ['-e', script, path], { timeout: LIMIT_MS });
  assert.is(r.signal, 'SIGKILL', String(r.stderr));
}

const fdSuite = suite('wasmloop --fd', {}, { timeLimitMs: 90_000 });

for (const backend of ['selector', 'completion', NET_COMPLETION]) {
  const label = backendLabel(backend);

  fdSuite(`run --fd 3, ${label}: serves the inherited socket; SIGTERM closes it, exit 0`, () =>
    withTcpSocket(async (fd, port) => {
      await withCommand(
        ['run', ECHO, '--fd', '3', '--backend', backend],
        async (server) => {
          await server.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${port} \\(pid`), 'out');
          assert.is(await pidOf({ port }), server.child.pid);
          server.child.kill('SIGTERM');
          assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
          await server.noneLeft();
        },
        { fds: [fd] },
      );
      assert.ok(existsSync(`/proc/self/fd/${fd}`), "the child closed its copy; the parent's is its own");
    }),
  );

  fdSuite(`run --fd 3 --workers 2, ${label}: both workers serve the one socket`, () =>
    withTcpSocket(async (fd, port) => {
      await withCommand(
        ['run', ECHO, '--fd', '3', '--workers', '2', '--backend', backend],
        async (server) => {
          await server.waitFor(/listening on[\s\S]*listening on/, 'out');
          const pids = await answering({ port }, 2);
          assert.equal([...pids].sort(), printedPids(server.output().out).sort(), 'each worker answered');
          assert.not.match(server.output().err, /restarting|failed/);
          server.child.kill('SIGTERM');
          assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
          await server.noneLeft();
        },
        { fds: [fd] },
      );
    }),
  );
}

fdSuite('run --fd 3 --workers 2 on node:net: a worker that crashes is restarted on the same socket', () =>
  withTcpSocket(async (fd, port) => {
    await withCommand(
      ['run', ECHO, '--fd', '3', '--workers', '2', '--backend', NET_COMPLETION],
      async (server) => {
        await server.waitFor(/listening on[\s\S]*listening on/, 'out');
        const crasher = net.connect({ port, host: '127.0.0.1' });
        crasher.on('error', () => {});
        crasher.write('crash\n');
        await server.waitFor(/worker \d \(pid \d+\) exited \(code 3\); restarting it/, 'err');
        await server.waitFor(/(listening on[\s\S]*){3}/, 'out');
        const pids = await answering({ port }, 2);
        assert.is(pids.size, 2, 'two workers answer, the restarted one among them');
        for (const pid of pids) assert.ok(isLive(pid), `${pid} answered and runs`);
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
        await server.noneLeft();
      },
      { fds: [fd] },
    );
  }),
);

fdSuite('serve --fd 3, alone and with --workers 2: HTTP on the inherited socket', () =>
  withTcpSocket(async (fd, port) => {
    await withCommand(
      ['serve', SERVE_APP, '--fd', '3', '--no-access-log'],
      async (server) => {
        await server.waitFor(new RegExp(`serving on http://127\\.0\\.0\\.1:${port} \\(pid`), 'err');
        assert.is(await get(port, '/pid'), String(server.child.pid));
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
        await server.noneLeft();
      },
      { fds: [fd] },
    );
    await withCommand(
      ['serve', SERVE_APP, '--fd', '3', '--workers', '2', '--no-access-log'],
      async (server) => {
        await server.waitFor(/serving on .*worker 1,/, 'err');
        await server.waitFor(/serving on .*worker 2,/, 'err');
        const pids = new Set();
        for (let i = 0; i < 100 && pids.size < 2; i++) pids.add(await get(port, '/pid'));
        assert.is(pids.size, 2, 'both workers answered');
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
        await server.noneLeft();
      },
      { fds: [fd] },
    );
  }),
);

fdSuite('--fd with --host, --port or --uds, or a descriptor that is no listening socket: one line, exit 2', () =>
  withTcpSocket(async (listening, port) => {
    const file = openSync(fileURLToPath(import.meta.url), 'r');
    const connected = addon.connect('127.0.0.1', port);
    try {
      const cases = [
        [
          ['run', ECHO, '--fd', '3', '--host', '::1'],
          [listening],
          /^wasmloop: --fd and --host: give one place to listen, not both$/,
        ],
        [
          ['serve', SERVE_APP, '--fd', '3', '--uds', '/tmp/x.sock'],
          [listening],
          /^wasmloop: --fd and --uds: give one place to listen, not both$/,
        ],
        [['run', ECHO, '--fd', '3'], [file], /^wasmloop: --fd 3: fd 3 is not a socket$/],
        [['serve', SERVE_APP, '--fd', '3'], [connected], /^wasmloop: --fd 3: fd 3 is not listening$/],
        [['run', ECHO, '--fd', '900', '--workers', '2'], [], /^wasmloop: --fd 900: fd 900 is not open$/],
        [['run', ECHO, '--fd', '-1'], [], /^wasmloop: --fd must be an integer from 0 to \d+, got '-1'$/],
      ];
      const results = await Promise.all(cases.map(([args, fds]) => runAsync(args, { fds })));
      for (const [i, [args, , pattern]] of cases.entries()) {
        const r = results[i];
        assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr.trim(), pattern);
        assert.is(r.stderr.trim().split('\n').length, 1);
      }
    } finally {
      closeSync(file);
      addon.close(connected);
    }
  }),
);

const udsSuite = suite('wasmloop --uds --workers', {}, { timeLimitMs: 90_000 });

for (const backend of ['selector', 'completion', NET_COMPLETION]) {
  udsSuite(
    `run --uds --workers 2, ${backendLabel(backend)}: the primary binds once (a stale file removed), both serve, the file goes at exit`,
    () =>
      inTempDir(async (dir) => {
        const path = join(dir, 'echo.sock');
        leaveStaleSocket(path);
        await withCommand(['run', ECHO, '--uds', path, '--workers', '2', '--backend', backend], async (server) => {
          await server.waitFor(/listening on [\s\S]*listening on /, 'out');
          assert.is(
            server
              .output()
              .out.split('\n')
              .filter((line) => line.startsWith(`listening on ${path} (pid`)).length,
            2,
          );
          const pids = await answering({ path }, 2);
          assert.equal([...pids].sort(), printedPids(server.output().out).sort(), 'each worker answered');
          server.child.kill('SIGTERM');
          assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
          await server.noneLeft();
        });
        assert.not.ok(existsSync(path), 'the primary removed the socket file');
      }),
  );
}

udsSuite('serve --uds --workers 2: HTTP on the shared Unix socket; a worker killed is restarted on it', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'app.sock');
    await withCommand(['serve', SERVE_APP, '--uds', path, '--workers', '2', '--no-access-log'], async (server) => {
      await server.waitFor(/serving on unix:.*worker 1,/, 'err');
      await server.waitFor(/serving on unix:.*worker 2,/, 'err');
      const pids = new Set();
      for (let i = 0; i < 100 && pids.size < 2; i++) pids.add(Number(await get(path, '/pid')));
      assert.is(pids.size, 2, 'both workers answered');
      process.kill([...pids][0], 'SIGKILL');
      await server.waitFor(/exited \(SIGKILL\); restarting it in \d+ ms/, 'err');
      await server.waitFor(/(serving on unix:[\s\S]*){3}/, 'err');
      assert.ok(lstatSync(path).isSocket(), 'the file stays while the primary runs');
      const after = new Set();
      for (let i = 0; i < 100 && after.size < 2; i++) after.add(Number(await get(path, '/pid')));
      assert.is(after.size, 2, 'the restarted worker answers too');
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
      await server.noneLeft();
    });
    assert.not.ok(existsSync(path));
  }),
);

udsSuite('run --uds --workers 2 where a live server listens: one line, exit 1, its socket stays', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'live.sock');
    const live = net.createServer((socket) => socket.on('error', () => {}).end());
    await new Promise((resolve) => live.listen(path, resolve));
    try {
      const r = await runAsync(['run', ECHO, '--uds', path, '--workers', '2']);
      assert.is(r.status, 1, r.stderr);
      assert.is(r.stderr.trim(), `wasmloop: --uds ${path}: cannot listen (EADDRINUSE)`);
      assert.ok(lstatSync(path).isSocket());
    } finally {
      await new Promise((resolve) => live.close(resolve));
    }
  }),
);

fdSuite.run();
udsSuite.run();
