// TCP options on connections: noDelay (TCP_NODELAY; on by default) and
// keepAlive (SO_KEEPALIVE, with an idle time), on servers' accepted
// connections and on connects, for streams and protocols. Checked where
// each shows: the addon's getsockopt, the virtual network's own record,
// the kernel's keep-alive timer (`ss`), and what the loop asked each
// backend's sockets for (test/fixtures/tcp-recording.mjs). An option a
// backend cannot honour is NotSupportedError, never ignored.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { recorded } from './fixtures/tcp-recording.mjs';
import { suite } from './harness.mjs';
import { HOST, SELECTOR } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';

const FIXTURE = fileURLToPath(new URL('./fixtures/tcp-recording.mjs', import.meta.url));
const spec = (name) => `${FIXTURE}:${name}`;

/** The kernel's timers of the established TCP sockets on `port` (local or peer), as `ss` shows them. */
function keepAliveTimers(port) {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} or dport = :${port} )`], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, , local] = line.trim().split(/\s+/);
      const timer = /timer:\(keepalive,([^,]+),/.exec(line);
      return { server: local.endsWith(`:${port}`), keepAlive: timer === null ? null : timer[1] };
    });
}

/** A keep-alive timer's time left in seconds (`ss` writes `29sec`, `1min29sec`, `119min`). */
function seconds(text) {
  let s = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(min|sec|ms)/g))
    s += Number(n) * (unit === 'min' ? 60 : unit === 'sec' ? 1 : 0.001);
  return s;
}

const hasSs = (() => {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const options = suite('TCP options: noDelay and keepAlive');

const BACKENDS = [
  ...(SELECTOR
    ? [
        ['selector', 'selector'],
        ['completion', 'completionNative'],
      ]
    : [['completion', 'completionNative']]),
  ['completion on node:net', 'completionNet'],
  ['virtual', 'virtual'],
];

for (const [label, factory] of BACKENDS) {
  // Deno's own sockets take keep-alive on or off, with no idle time.
  const denoSockets = HOST === 'deno' && factory === 'completionNative';
  options(`${label}: a server's and a connection's options reach each socket`, async () => {
    const loop = await createLoop({ backend: spec(factory) });
    const calls = recorded[recorded.length - 1];
    try {
      await loop.runUntilComplete(async () => {
        if (denoSockets) {
          const { error } = await outcome(loop.createServer(() => undefined, { port: 0, keepAlive: 30_000 }));
          assert.instance(error, NotSupportedError);
          assert.match(error.message, /Deno's sockets take keep-alive on or off/);
        }
        const server = await loop.createServer(async (conn) => void (await conn.read()), {
          port: 0,
          noDelay: false,
          keepAlive: denoSockets ? true : 30_000,
        });
        const port = server.address().port;
        const client = await loop.createConnection({ port, keepAlive: true });
        const plain = await loop.createConnection({ port });
        await until(loop, () => server.connections === 2, 'both accepted');
        // What the loop asked for: the server's options on its accepted socket, the client's on its own.
        const asked = calls.map(({ noDelay, keepAliveMs }) => ({ noDelay, keepAliveMs }));
        assert.equal(asked.length, 3, 'the plain connect asked for nothing');
        assert.ok(
          asked.some((c) => c.noDelay === false && c.keepAliveMs === (denoSockets ? 0 : 30_000)),
          JSON.stringify(asked),
        );
        assert.ok(
          asked.some((c) => c.noDelay === null && c.keepAliveMs === 0),
          JSON.stringify(asked),
        );
        // What the socket says (readiness backends read it back).
        for (const call of calls.filter((c) => c.readBack !== undefined)) {
          assert.is(call.rc, 0);
          const [noDelay, keepAlive, idle] = call.readBack;
          if (call.keepAliveMs === 30_000) assert.equal([noDelay, keepAlive, idle], [0, 1, 30]);
          else assert.equal([noDelay, keepAlive], [1, 1], 'noDelay stays on when not asked otherwise');
        }
        if (factory !== 'virtual' && hasSs && !denoSockets) {
          // The kernel's keep-alive timers: 30 s on both accepted sockets, the system's on the client's, none on the plain one.
          const timers = keepAliveTimers(port);
          const shown = JSON.stringify(timers);
          assert.is(
            timers.filter((t) => t.server && t.keepAlive !== null && seconds(t.keepAlive) <= 30).length,
            2,
            shown,
          );
          assert.is(
            timers.filter((t) => !t.server && t.keepAlive !== null && seconds(t.keepAlive) > 30).length,
            1,
            shown,
          );
          assert.is(timers.filter((t) => t.keepAlive === null).length, 1, shown);
        }
        for (const c of [client, plain]) c.close();
        await within(server.close(), 'server.close()');
      });
    } finally {
      await loop.close();
    }
  });

  options(`${label}: a protocol server's and connection's options reach each socket`, async () => {
    const loop = await createLoop({ backend: spec(factory) });
    const calls = recorded[recorded.length - 1];
    try {
      await loop.runUntilComplete(async () => {
        const server = await loop.createProtocolServer(() => ({}), { port: 0, noDelay: true, keepAlive: false });
        const { transport } = await loop.createProtocolConnection(() => ({}), {
          port: server.address().port,
          noDelay: false,
        });
        await until(loop, () => calls.length === 2, 'both sockets set');
        const asked = calls.map(({ noDelay, keepAliveMs }) => ({ noDelay, keepAliveMs }));
        assert.ok(
          asked.some((c) => c.noDelay === true && c.keepAliveMs === -1),
          JSON.stringify(asked),
        );
        assert.ok(
          asked.some((c) => c.noDelay === false && c.keepAliveMs === null),
          JSON.stringify(asked),
        );
        for (const call of calls.filter((c) => c.readBack !== undefined)) {
          assert.is(call.readBack[0], call.noDelay ? 1 : 0);
          assert.is(call.readBack[1], 0);
        }
        transport.abort();
        server.abortClients();
        await within(server.close(), 'server.close()');
      });
    } finally {
      await loop.close();
    }
  });
}

options(
  'what a backend cannot honour is refused: Nagle on a virtual network with latency; a backend without TCP options',
  async () => {
    const loop = await createLoop({ backend: spec('slowVirtual') });
    try {
      const { error } = await outcome(loop.createServer(() => undefined, { port: 0, noDelay: false }));
      assert.instance(error, NotSupportedError);
      assert.match(
        error.message,
        /createServer: the 'virtual' backend cannot take noDelay: false: .*Nagle's algorithm/,
      );
      // What it does anyway is fine: each write at once, keep-alive recorded.
      const server = await loop.runUntilComplete(() =>
        loop.createServer(() => undefined, { port: 0, noDelay: true, keepAlive: 5000 }),
      );
      await loop.runUntilComplete(() => server.close());
    } finally {
      await loop.close();
    }
    if (!SELECTOR) return;
    // A readiness backend whose sockets have no setTcpOptions.
    const tcpOnly = await createLoop({
      backend: `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:tcpOnlySelector`,
    });
    try {
      const { error } = await outcome(tcpOnly.createConnection({ port: 1, keepAlive: true }));
      assert.instance(error, NotSupportedError);
      assert.match(error.message, /cannot take keepAlive: it sets no TCP options/);
    } finally {
      await tcpOnly.close();
    }
  },
);

options('bad values: a TypeError or RangeError naming the option; TCP options with a path: TypeError', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  try {
    for (const [opts, type, pattern] of [
      [{ noDelay: 'yes' }, TypeError, /createServer: noDelay must be a boolean/],
      [
        { keepAlive: 0 },
        RangeError,
        /createServer: keepAlive must be true, false or an idle time in ms from 1 to 32767000/,
      ],
      [{ keepAlive: -5 }, RangeError, /keepAlive must be/],
      [{ keepAlive: 4e7 }, RangeError, /keepAlive must be/],
      [{ keepAlive: Number.NaN }, RangeError, /keepAlive must be/],
      [{ keepAlive: 'on' }, TypeError, /keepAlive must be a boolean or an idle time/],
    ]) {
      const { error } = await outcome(loop.createServer(() => undefined, { port: 0, ...opts }));
      assert.instance(error, type, JSON.stringify(opts));
      assert.match(error.message, pattern);
    }
    const { error } = await outcome(loop.createConnection({ path: '/tmp/x.sock', noDelay: true }));
    assert.instance(error, TypeError);
    assert.match(error.message, /noDelay and keepAlive are TCP options, not for a Unix socket's path/);
    assert.is(loop.stats().watchers, 0, 'nothing was opened');
  } finally {
    await loop.close();
  }
});

if (SELECTOR) {
  options("the selector's addon: setTcpOptions and tcpOptions round trip through the kernel", async () => {
    const { loadSelectorAddon } = await import('../ts-host/dist/backends/selector.js');
    const addon = loadSelectorAddon();
    const listener = addon.listen('127.0.0.1', 0, 8, false);
    const port = Number(String(addon.address(listener, false)).split(' ')[2]);
    const client = addon.connect('127.0.0.1', port);
    try {
      assert.is(addon.tcpOptions(client)[0], 1, 'noDelay is on by default');
      assert.is(addon.setTcpOptions(client, false, 90_500), 0);
      assert.equal(addon.tcpOptions(client), [0, 1, 91], 'the idle time rounds up to whole seconds');
      assert.is(addon.setTcpOptions(client, null, -1), 0);
      assert.equal(addon.tcpOptions(client).slice(0, 2), [0, 0], 'noDelay left as it was, keep-alive off');
      assert.is(addon.setTcpOptions(client, true, 0), 0);
      assert.equal(addon.tcpOptions(client).slice(0, 2), [1, 1]);
      const [r, w] = addon.pipe();
      assert.ok(addon.setTcpOptions(r, true, null) < 0, 'not a socket: a negative errno');
      addon.close(r);
      addon.close(w);
    } finally {
      addon.close(client);
      addon.close(listener);
    }
  });
}

options.run();
