// Serving on a listening socket another process handed over:
// createServer(handler, { fd }), createProtocolServer and serve({ fd }).
// In this process on each Node backend (the socket bound by the addon, as a
// parent would bind it); in a child process of Node, Deno and Bun that
// inherits it as descriptor 3 (test/fixtures/fd-child.mjs); and every
// descriptor that is not a listening socket refused with what is wrong.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { IoError, NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { loadSelectorAddon } from '../ts-host/dist/backends/selector.js';
import { suite } from './harness.mjs';
import { NET_COMPLETION, backendLabel, onLoop } from './helpers.mjs';

const addon = loadSelectorAddon();
const root = fileURLToPath(new URL('..', import.meta.url));
const CHILD = 'test/fixtures/fd-child.mjs';
/** How long a child process has for any one step: generous, never a measurement. */
const LIMIT_MS = 30_000;

const isOpen = (fd) => existsSync(`/proc/self/fd/${fd}`);

/** This process's open sockets (the loop's own epoll and event descriptors are not counted: libuv closes them a turn late). */
function openSockets() {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) count++;
    } catch {
      // Closed while we looked.
    }
  }
  return count;
}

/** Resolves once no more sockets are open than `baseline` (a client's close lands a turn late); fails after LIMIT_MS. */
async function socketsBackTo(baseline) {
  const giveUpAt = performance.now() + LIMIT_MS;
  while (openSockets() > baseline) {
    if (performance.now() > giveUpAt) assert.unreachable(`${openSockets()} sockets open, ${baseline} before`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A listening TCP socket on a free loopback port, as a parent process binds one: { fd, port }. */
function bindTcp() {
  const fd = addon.listen('127.0.0.1', 0, 64);
  assert.ok(fd >= 0, `listen: ${fd}`);
  return { fd, port: Number(addon.address(fd, false).split(' ')[2]) };
}

/** A loop of `backend` made and closed, so that what a first loop opens for good is open before a case counts. */
const warmUp = (backend) => onLoop(backend, () => undefined);

/** A temporary directory for one case. */
async function inTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-fd-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a server answers a connection with, read to its end. */
function answer(at) {
  return new Promise((resolve, reject) => {
    let got = '';
    net
      .connect(at)
      .on('data', (d) => (got += d))
      .on('close', () => resolve(got))
      .on('error', reject);
  });
}

/** A handler that answers `text` and ends. */
const answering = (text) => async (conn) => {
  await conn.write(text);
  await conn.end();
};

const adopted = suite('listening on an inherited socket (fd)');

for (const backend of ['selector', 'completion', NET_COMPLETION]) {
  const label = backendLabel(backend);

  adopted(
    `${label}: serves a TCP socket it adopts; address() is the socket's; closing closes the descriptor`,
    async () => {
      await warmUp(backend);
      const baseline = openSockets();
      const { fd, port } = bindTcp();
      await onLoop(backend, async (loop) => {
        const server = await loop.createServer(answering('adopted\n'), { fd });
        assert.equal(server.address(), { host: '127.0.0.1', port, family: 'IPv4' });
        assert.is(await answer({ port, host: '127.0.0.1' }), 'adopted\n');
        await server.close();
      });
      assert.not.ok(isOpen(fd), 'closing the server closed the descriptor');
      await socketsBackTo(baseline);
    },
  );

  adopted(`${label}: serves a Unix socket it adopts; closing leaves the socket file to whoever bound it`, () =>
    inTempDir(async (dir) => {
      const path = join(dir, 'bound.sock');
      await warmUp(backend);
      const baseline = openSockets();
      const fd = addon.listenUnix(path, 64);
      await onLoop(backend, async (loop) => {
        const server = await loop.createProtocolServer(
          () => ({
            connectionMade(transport) {
              transport.write('unix\n');
              transport.close();
            },
          }),
          { fd },
        );
        assert.equal(server.address(), { host: '', port: 0, family: 'unix', path });
        assert.is(await answer({ path }), 'unix\n');
        await server.close();
      });
      assert.not.ok(isOpen(fd));
      assert.ok(existsSync(path), 'the socket file stays: its binder removes it');
      await socketsBackTo(baseline);
    }),
  );

  adopted(`${label}: serve({ fd }) answers HTTP on the adopted socket`, async () => {
    const { fd, port } = bindTcp();
    await onLoop(backend, async (loop) => {
      const server = await loop.serve({ fd, fetch: () => new Response('over http') });
      assert.is(server.address().port, port);
      const response = await fetch(`http://127.0.0.1:${port}/`);
      assert.is(await response.text(), 'over http');
      await server.close();
    });
    assert.not.ok(isOpen(fd));
  });

  adopted(`${label}: a descriptor that is no listening socket is refused, saying why, and left open`, async () => {
    const { fd: listening, port } = bindTcp();
    const cases = [
      { fd: openSync(fileURLToPath(import.meta.url), 'r'), code: 'ENOTSOCK', says: /is not a socket/ },
      { fd: addon.connect('127.0.0.1', port), code: 'EINVAL', says: /is not listening/ },
      { fd: addon.udpBind('127.0.0.1', 0), code: 'EPROTOTYPE', says: /is a datagram socket, which cannot listen/ },
    ];
    await warmUp(backend);
    const baseline = openSockets();
    try {
      await onLoop(backend, async (loop) => {
        for (const { fd, code, says } of cases) {
          const error = await loop.createServer(() => {}, { fd }).catch((e) => e);
          assert.instance(error, IoError, String(error));
          assert.is(error.code, code);
          assert.match(error.message, new RegExp(`fd ${fd} ${says.source}`));
          assert.ok(isOpen(fd), 'a descriptor it did not adopt stays open');
        }
        // A number no descriptor has.
        const closed = openSync(fileURLToPath(import.meta.url), 'r');
        closeSync(closed);
        const error = await loop.createProtocolServer(() => ({}), { fd: closed }).catch((e) => e);
        assert.instance(error, IoError);
        assert.is(error.code, 'EBADF');
        assert.match(error.message, `fd ${closed} is not open`);
      });
      await socketsBackTo(baseline);
    } finally {
      for (const { fd } of cases) closeSync(fd);
      addon.close(listening);
    }
  });
}

adopted('virtual: an fd is NotSupportedError (its network is in memory)', () =>
  onLoop('virtual', async (loop) => {
    const error = await loop.createServer(() => {}, { fd: 0 }).catch((e) => e);
    assert.instance(error, NotSupportedError);
    assert.match(error.message, /'virtual' backend cannot adopt a listening socket \(fd\): its network is in memory/);
  }),
);

adopted('fd with host, port, path, backlog or reusePort, or not a descriptor number: TypeError naming it', async () => {
  const loop = await createLoop({ backend: 'selector' });
  try {
    const refused = [
      [{ fd: 3, port: 80 }, /give fd, or a host and port, or a path; not fd with port/],
      [{ fd: 3, host: '::1', port: 80 }, /not fd with host and port/],
      [{ fd: 3, path: '/tmp/x.sock' }, /not fd with path/],
      [{ fd: 3, backlog: 10 }, /backlog is set where the socket of fd was made to listen/],
      [{ fd: 3, reusePort: true }, /reusePort is set where the socket of fd was made to listen/],
      [{ fd: -1 }, /fd must be a non-negative integer file descriptor, got number -1/],
      [{ fd: '3' }, /fd must be a non-negative integer file descriptor/],
      [{ fd: 1.5 }, /fd must be a non-negative integer/],
      [{ FD: 3 }, /unknown option 'FD' \(did you mean 'fd'\?\)/],
    ];
    for (const [options, message] of refused) {
      const error = await loop.createServer(() => {}, options).catch((e) => e);
      assert.instance(error, TypeError, JSON.stringify(options));
      assert.match(error.message, message);
    }
    const error = await loop.serve({ fd: 3, port: 80, fetch: () => new Response('') }).catch((e) => e);
    assert.instance(error, TypeError);
    assert.match(error.message, /not fd with port/);
  } finally {
    await loop.close();
  }
});

adopted('a Unix socket refuses TCP options: the server is closed, and with it the descriptor', () =>
  inTempDir((dir) =>
    onLoop('selector', async (loop) => {
      const fd = addon.listenUnix(join(dir, 'tcp-options.sock'), 8);
      const error = await loop.createServer(() => {}, { fd, noDelay: false }).catch((e) => e);
      assert.instance(error, TypeError);
      assert.match(error.message, `noDelay and keepAlive are TCP options, and fd ${fd} is a Unix domain socket`);
      assert.not.ok(isOpen(fd));
    }),
  ),
);

// --------------------------------------------- a child process inherits it

/**
 * Spawns `fd-child.mjs` on `host` with `fd` as its descriptor 3; resolves
 * with its first line (parsed) and `finish()`, which ends its stdin and
 * resolves with its last line once it exited.
 */
function child(host, backend, fd, kind = 'stream') {
  const [command, args] = {
    node: [process.execPath, [CHILD]],
    deno: ['node_modules/.bin/deno', ['run', '-A', CHILD]],
    bun: ['node_modules/.bin/bun', [CHILD]],
  }[host];
  const { FORCE_COLOR, ...env } = process.env;
  const proc = spawn(command, [...args, backend, kind], {
    cwd: root,
    env: { ...env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'inherit', fd],
  });
  let out = '';
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const timer = setTimeout(() => proc.kill('SIGKILL'), LIMIT_MS);
  const first = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(lines()[0]);
    });
    exited.then((code) => reject(new Error(`${host} exited with ${code} before it listened: ${out}`)));
  });
  return first.then((line) => ({
    line,
    pid: proc.pid,
    finish: async () => {
      proc.stdin.end();
      const code = await exited;
      clearTimeout(timer);
      return { code, last: lines().at(-1) };
    },
  }));
}

const inherited = suite('a child process serves the socket it inherited');

const HOST_CASES = [
  ['node', 'selector'],
  ['node', 'completion'],
  ['node', NET_COMPLETION],
  ['deno', NET_COMPLETION],
  ['bun', 'completion'],
  ['bun', NET_COMPLETION],
];
for (const [host, backend] of HOST_CASES) {
  const label =
    backend === NET_COMPLETION
      ? 'completion on node:net'
      : backend === 'completion' && host !== 'node'
        ? `completion on ${host}`
        : backend;
  for (const kind of host === 'node' ? ['stream', 'protocol', 'http'] : ['stream']) {
    inherited(`${host}, ${label}, ${kind}: the parent binds, the child serves, the parent connects`, async () => {
      const { fd, port } = bindTcp();
      try {
        const served = await child(host, backend, fd, kind);
        assert.equal(served.line, { address: { host: '127.0.0.1', port, family: 'IPv4' }, pid: served.pid });
        const reply =
          kind === 'http'
            ? await (await fetch(`http://127.0.0.1:${port}/`)).text()
            : await answer({ port, host: '127.0.0.1' });
        assert.is(reply, `${served.pid}\n`);
        assert.equal(await served.finish(), { code: 0, last: { closed: true } });
      } finally {
        addon.close(fd);
      }
    });
  }
}

inherited('bun, completion on bun: a Unix socket it inherited; address() is its path', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'bun.sock');
    const fd = addon.listenUnix(path, 8);
    try {
      const served = await child('bun', 'completion', fd);
      assert.equal(served.line, { address: { host: '', port: 0, family: 'unix', path }, pid: served.pid });
      assert.is(await answer({ path }), `${served.pid}\n`);
      assert.equal(await served.finish(), { code: 0, last: { closed: true } });
      assert.ok(existsSync(path));
    } finally {
      addon.close(fd);
    }
  }),
);

inherited('deno, completion on deno: NotSupportedError naming Deno, which points to its node:net', async () => {
  const { fd } = bindTcp();
  try {
    const served = await child('deno', 'completion', fd);
    assert.is(served.line.error, 'NotSupportedError');
    assert.match(
      served.line.message,
      /on Deno cannot adopt a listening socket \(fd\): Deno.listen takes none; Deno's node:net can/,
    );
    assert.is((await served.finish()).code, 0);
  } finally {
    addon.close(fd);
  }
});

adopted.run();
inherited.run();
