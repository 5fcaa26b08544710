// TCP options after a connection is open: `transport.setTcpOptions`, and
// TransportDuplex's `setNoDelay` and `setKeepAlive` (net.Socket's, which a
// `(req, res)` listener under `wasmloop serve --interface node` reaches as
// `req.socket`), on each backend, over TLS too. Checked where each shows:
// what the loop asked the backend's sockets for, and on readiness backends
// what the socket reads back (test/fixtures/tcp-recording.mjs).
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { ConnectionClosedError, NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { duplexProtocol } from '../ts-host/dist/io/transport-duplex.js';
import { recorded } from './fixtures/tcp-recording.mjs';
import { suite } from './harness.mjs';
import { SELECTOR } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const FIXTURE = fileURLToPath(new URL('./fixtures/tcp-recording.mjs', import.meta.url));
const spec = (name) => `${FIXTURE}:${name}`;

const BACKENDS = [
  ...(SELECTOR ? [['selector', 'selector']] : []),
  ['completion', 'completionNative'],
  ['completion on node:net', 'completionNet'],
  ['virtual', 'virtual'],
];

/** What the loop asked the sockets for, without the read-back. */
const asked = (calls) => calls.map(({ noDelay, keepAliveMs }) => ({ noDelay, keepAliveMs }));

/** A server whose connections become Duplexes; resolves with the first one and the client's transport. */
async function duplexPair(loop, listen = { port: 0 }) {
  let resolve;
  const accepted = new Promise((r) => (resolve = r));
  const server = await loop.createProtocolServer(() => duplexProtocol(loop, resolve), listen);
  const address = server.address();
  const { transport } = await loop.createProtocolConnection(
    () => ({}),
    address.family === 'unix'
      ? { path: address.path }
      : { port: address.port, ...(listen.tls ? { tls: { ca: certificates().ca.cert } } : {}) },
  );
  return { server, duplex: await within(accepted, 'the accepted duplex'), client: transport };
}

const sockopts = suite('TCP options on open connections');

for (const [label, factory] of BACKENDS) {
  sockopts(`${label}: a duplex's setNoDelay and setKeepAlive reach its socket`, async () => {
    const loop = await createLoop({ backend: spec(factory) });
    const calls = recorded[recorded.length - 1];
    try {
      await loop.runUntilComplete(async () => {
        const { server, duplex, client } = await duplexPair(loop);
        assert.equal(calls, [], 'nothing asked for when the connections opened');
        assert.is(duplex.setNoDelay(false), duplex, 'chainable, as net.Socket');
        duplex.setKeepAlive(true, 30_000);
        duplex.setNoDelay();
        duplex.setKeepAlive(false);
        duplex.setKeepAlive(true);
        assert.equal(asked(calls), [
          { noDelay: false, keepAliveMs: null },
          { noDelay: null, keepAliveMs: 30_000 },
          { noDelay: true, keepAliveMs: null },
          { noDelay: null, keepAliveMs: -1 },
          { noDelay: null, keepAliveMs: 0 },
        ]);
        // The socket itself says so (readiness backends read it back): [noDelay, keepAlive, idle s].
        const backs = calls.filter((c) => c.readBack !== undefined).map((c) => c.readBack.slice(0, 2));
        if (backs.length > 0)
          assert.equal(backs, [
            [0, 0],
            [0, 1],
            [1, 1],
            [1, 0],
            [1, 1],
          ]);
        assert.equal(calls[1].readBack?.[2] ?? 30, 30, 'the idle time, in whole seconds');
        // The client's transport, directly.
        client.setTcpOptions({ noDelay: false, keepAlive: 5000 });
        assert.equal(asked(calls).at(-1), { noDelay: false, keepAliveMs: 5000 });
        client.setTcpOptions({});
        assert.is(calls.length, 6, 'no option given: nothing asked for');
        client.abort();
        duplex.destroy();
        assert.not.throws(() => duplex.setNoDelay(false), 'a destroyed duplex has no socket: nothing to do');
        assert.is(calls.length, 6);
        const { error } = await outcome(Promise.resolve().then(() => client.setTcpOptions({ noDelay: true })));
        assert.instance(error, ConnectionClosedError);
        assert.match(error.message, /^setTcpOptions: the connection is closing or closed$/);
        server.abortClients();
        await within(server.close(), 'server.close()');
      });
    } finally {
      await loop.close();
    }
  });
}

sockopts('bad values: a TypeError or RangeError naming the argument', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  try {
    await loop.runUntilComplete(async () => {
      const { server, duplex, client } = await duplexPair(loop);
      for (const [attempt, type, pattern] of [
        [() => duplex.setNoDelay('yes'), TypeError, /^setNoDelay: noDelay must be a boolean, got string "yes"$/],
        [() => duplex.setKeepAlive(1), TypeError, /^setKeepAlive: enable must be a boolean, got number 1$/],
        [
          () => duplex.setKeepAlive(true, -1),
          RangeError,
          /^setKeepAlive: initialDelay must be a number of ms from 0 to 32767000/,
        ],
        [() => duplex.setKeepAlive(true, Number.NaN), RangeError, /initialDelay must be/],
        [
          () => client.setTcpOptions({ nodelay: true }),
          TypeError,
          /^setTcpOptions: unknown option 'nodelay' \(did you mean 'noDelay'\?\)/,
        ],
        [
          () => client.setTcpOptions({ keepAlive: 0 }),
          RangeError,
          /^setTcpOptions: keepAlive must be true, false or an idle time/,
        ],
        [() => client.setTcpOptions(true), TypeError, /^setTcpOptions: options must be an object/],
      ]) {
        const { error } = await outcome(Promise.resolve().then(attempt));
        assert.instance(error, type, String(pattern));
        assert.match(error.message, pattern);
      }
      server.abortClients();
      client.abort();
      await within(server.close(), 'server.close()');
    });
  } finally {
    await loop.close();
  }
});

sockopts("a Unix socket: the transport refuses TCP options; the duplex does nothing, as net.Socket's", async () => {
  const loop = await createLoop({ backend: spec('virtual') });
  const calls = recorded[recorded.length - 1];
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-sockopts-'));
  try {
    await loop.runUntilComplete(async () => {
      const { server, duplex, client } = await duplexPair(loop, { path: join(dir, 's.sock') });
      duplex.setNoDelay(true).setKeepAlive(true, 1000);
      assert.equal(calls, []);
      const { error } = await outcome(Promise.resolve().then(() => client.setTcpOptions({ noDelay: true })));
      assert.instance(error, TypeError);
      assert.match(error.message, /^setTcpOptions: noDelay and keepAlive are TCP options, not for a Unix socket$/);
      server.abortClients();
      client.abort();
      await within(server.close(), 'server.close()');
    });
  } finally {
    await loop.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

sockopts('what the backend cannot honour is NotSupportedError: Nagle on a virtual network with latency', async () => {
  const loop = await createLoop({ backend: spec('slowVirtual') });
  try {
    await loop.runUntilComplete(async () => {
      const { server, duplex, client } = await duplexPair(loop);
      const { error } = await outcome(Promise.resolve().then(() => duplex.setNoDelay(false)));
      assert.instance(error, NotSupportedError);
      assert.match(
        error.message,
        /^setTcpOptions: the 'virtual' backend cannot take noDelay: false: .*Nagle's algorithm/,
      );
      duplex.setNoDelay(true);
      server.abortClients();
      client.abort();
      await within(server.close(), 'server.close()');
    });
  } finally {
    await loop.close();
  }
});

sockopts('over TLS: the options go to the socket below the TLS transport', async () => {
  const loop = await createLoop({ backend: spec(SELECTOR ? 'selector' : 'completionNative') });
  const calls = recorded[recorded.length - 1];
  try {
    await loop.runUntilComplete(async () => {
      const { key, cert } = certificates().server;
      const { server, duplex, client } = await duplexPair(loop, { port: 0, tls: { key, cert } });
      assert.equal(calls, []);
      duplex.setNoDelay(false);
      duplex.setKeepAlive(true, 2000);
      client.setTcpOptions({ noDelay: true, keepAlive: false });
      assert.equal(asked(calls), [
        { noDelay: false, keepAliveMs: null },
        { noDelay: null, keepAliveMs: 2000 },
        { noDelay: true, keepAliveMs: -1 },
      ]);
      client.abort();
      server.abortClients();
      await within(server.close(), 'server.close()');
    });
  } finally {
    await loop.close();
  }
});

sockopts(
  "node:http over the loop (`--interface node`): a listener's req.socket.setKeepAlive reaches the socket",
  async () => {
    const loop = await createLoop({ backend: spec(SELECTOR ? 'selector' : 'completionNative') });
    const calls = recorded[recorded.length - 1];
    try {
      await loop.runUntilComplete(async () => {
        const node = http.createServer((req, res) => {
          req.socket.setKeepAlive(true, 60_000);
          res.end('ok');
        });
        const server = await loop.createProtocolServer(
          () => duplexProtocol(loop, (d) => node.emit('connection', d), { allowHalfOpen: true }),
          { port: 0 },
        );
        const conn = await loop.createConnection({ port: server.address().port });
        await conn.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        let text = '';
        for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read())
          text += Buffer.from(chunk).toString();
        assert.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
        await until(loop, () => calls.length > 0, 'the option set');
        assert.equal(asked(calls), [{ noDelay: null, keepAliveMs: 60_000 }]);
        conn.close();
        node.close();
        await within(server.close(), 'server.close()');
      });
    } finally {
      await loop.close();
    }
  },
);

sockopts.run();
