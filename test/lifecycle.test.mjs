// Nothing lost: every promise a connection hands out settles, and every
// protocol hears connectionLost exactly once, however the connection ends
// (closed, aborted, reset by the peer, or its loop closed), on every backend.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import {
  ConnectionClosedError,
  ConnectionResetError,
  IoError,
  LoopClosedError,
  WasmloopError,
  createLoop,
} from '../ts-host/dist/index.js';
import { IO_BACKENDS, REAL_BACKEND, backendLabel } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';

/** One turn of the loop (a callback the core ordered), `n` times. */
async function turns(loop, n = 3) {
  for (let i = 0; i < n; i++) await new Promise((resolve) => loop.callSoon(resolve));
}

/**
 * A connected pair: `client` and the server's end of it, `peer`. The
 * server's handler keeps the connection (it returns no promise).
 */
async function pair(loop) {
  let peer;
  const server = await loop.createServer(
    (conn) => {
      peer = conn;
    },
    { port: 0 },
  );
  const client = await loop.createConnection({ port: server.address().port });
  await until(loop, () => peer !== undefined, 'accept');
  return { server, client, peer };
}

/**
 * Writes 64 KiB chunks to `conn` (whose peer does not read) until one is
 * still pending after a few loop turns, then one more: returns every write.
 */
async function fillUntilBlocked(loop, conn) {
  const chunk = new Uint8Array(64 * 1024).fill(120);
  const writes = [];
  for (let i = 0; i < 4096; i++) {
    let settled = false;
    const write = conn.write(chunk);
    write.then(
      () => (settled = true),
      () => (settled = true),
    );
    writes.push(write);
    await turns(loop, 2);
    if (!settled) {
      writes.push(conn.write(chunk));
      return writes;
    }
  }
  throw new Error('every write completed: the peer must be reading');
}

/** Asserts every write settled and the last ones failed with a connection error. */
async function assertWritesSettled(writes, what) {
  const results = await within(Promise.all(writes.map(outcome)), what);
  const last = results[results.length - 1];
  assert.ok(last.error !== undefined, `${what}: the last (blocked) write rejected`);
  assert.ok(
    last.error instanceof ConnectionClosedError || last.error instanceof ConnectionResetError,
    `${what}: rejected with ${last.error}`,
  );
}

/** Closes `server` and what it still has open (connections its handlers kept). */
async function shutDown(server) {
  server.abortClients();
  await within(server.close(), 'server.close()');
  assert.is(server.connections, 0, 'no connection left');
}

/** Runs `fn(loop)` in a fresh loop of `backend`; `after(result)` runs once the loop is closed. */
async function onLoopThenClose(backend, fn, after) {
  const loop = await createLoop({ backend });
  let result;
  try {
    // fn returns its pending promises inside an object, so runUntilComplete does not wait for them.
    result = await loop.runUntilComplete(() => fn(loop));
  } finally {
    await loop.close();
  }
  await after(result);
}

/** Runs `fn(loop)` on a fresh loop; checks the loop's I/O accounting is back to its baseline after. */
async function onLoopCounted(backend, fn) {
  const loop = await createLoop({ backend });
  try {
    await loop.runUntilComplete(async () => {
      const before = loop.stats();
      await fn(loop);
      await turns(loop, 5);
      const after = loop.stats();
      assert.is(after.watchers, before.watchers, 'watchers back to the baseline');
      assert.is(after.completionsPending, before.completionsPending, 'expected completions back to the baseline');
    });
  } finally {
    await loop.close();
  }
}

for (const backend of IO_BACKENDS) {
  const label = backendLabel(backend);
  const streams = suite(`lifecycle: streams on '${label}'`);

  streams('a blocked write rejects when its connection is closed', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client } = await pair(loop);
      const writes = await fillUntilBlocked(loop, client);
      client.close();
      await assertWritesSettled(writes, 'write after close()');
      await shutDown(server);
    }),
  );

  streams('a blocked write rejects when the peer resets the connection', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client, peer } = await pair(loop);
      const writes = await fillUntilBlocked(loop, client);
      peer.close(); // unread data: the kernel resets the connection
      await assertWritesSettled(writes, 'write after the peer reset');
      client.close();
      await shutDown(server);
    }),
  );

  streams('a blocked write and end() reject when the loop closes', () =>
    onLoopThenClose(
      backend,
      async (loop) => {
        const { client } = await pair(loop);
        const writes = await fillUntilBlocked(loop, client);
        return { writes, end: client.end() };
      },
      async ({ writes, end }) => {
        await assertWritesSettled(writes, 'write after loop.close()');
        await within(outcome(end), 'end() after loop.close()');
      },
    ),
  );

  streams('end() after a blocked write settles when the connection is closed', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client } = await pair(loop);
      const writes = await fillUntilBlocked(loop, client);
      const end = outcome(client.end());
      client.close();
      await assertWritesSettled(writes, 'write after close()');
      await within(end, 'end() after close()');
      await shutDown(server);
    }),
  );

  for (const [name, read] of [
    ['read()', (conn) => conn.read()],
    ['readExactly()', (conn) => conn.readExactly(10)],
    ['readUntil()', (conn) => conn.readUntil('\n')],
    ['a web stream read', (conn) => conn.readable.getReader().read()],
  ]) {
    streams(`a pending ${name} rejects when its connection is closed`, () =>
      onLoopCounted(backend, async (loop) => {
        const { server, client } = await pair(loop);
        const pending = outcome(read(client));
        await turns(loop);
        client.close();
        const { error } = await within(pending, `${name} after close()`);
        assert.instance(error, ConnectionClosedError);
        await shutDown(server);
      }),
    );

    streams(`a pending ${name} rejects when the peer resets the connection`, () =>
      onLoopCounted(backend, async (loop) => {
        const { server, client, peer } = await pair(loop);
        // Unread bytes at the peer make its close a reset.
        await client.write('unread by the peer');
        await until(
          loop,
          () => peer.maxBuffered > 0 || backend === 'selector' || backend === 'virtual',
          'bytes at the peer',
        );
        await turns(loop);
        const pending = outcome(read(client));
        await turns(loop);
        peer.close();
        const result = await within(pending, `${name} after the peer reset`);
        // A reset, or (where the peer had read the bytes already) the end of the stream.
        if (result.error !== undefined) assert.instance(result.error, WasmloopError);
        client.close();
        await shutDown(server);
      }),
    );

    streams(`a pending ${name} rejects when the loop closes`, () =>
      onLoopThenClose(
        backend,
        async (loop) => {
          const { client } = await pair(loop);
          const pending = outcome(read(client));
          await turns(loop);
          return { pending };
        },
        async ({ pending }) => {
          const { error } = await within(pending, `${name} after loop.close()`);
          assert.instance(error, ConnectionClosedError);
        },
      ),
    );
  }

  streams('a pending connect rejects when the loop closes', async () => {
    const server = await createLoop({ backend: REAL_BACKEND });
    const port = (await server.runUntilComplete(() => server.createServer(() => {}, { port: 0 }))).address().port;
    try {
      await onLoopThenClose(
        backend,
        async (loop) => ({ connecting: outcome(loop.createConnection({ port: backend === 'virtual' ? 1 : port })) }),
        async ({ connecting }) => {
          const result = await within(connecting, 'connect after loop.close()');
          // Refused (the virtual network has nothing there) or abandoned by the closing loop.
          assert.ok(result.error instanceof LoopClosedError || result.error instanceof IoError, String(result.error));
        },
      );
    } finally {
      await server.close();
    }
  });

  streams('a pending server.close() settles when the loop closes', () =>
    onLoopThenClose(
      backend,
      async (loop) => {
        const { server } = await pair(loop);
        // The handler kept its connection: close() waits for it.
        return { closing: outcome(server.close()) };
      },
      async ({ closing }) => {
        const result = await within(closing, 'server.close() after loop.close()');
        assert.is(result.error, undefined, 'it resolves: its connections are gone');
      },
    ),
  );

  streams('server.close() settles when the loop closes before running the release it expects', async () => {
    const loop = await createLoop({ backend });
    let closing;
    try {
      const server = await loop.runUntilComplete(() => loop.createServer(() => undefined, { port: 0 }));
      const expected = loop.stats().completionsPending;
      // Outside a run: no iteration follows. A host that lets go of the
      // listener later (Deno) calls back in a host turn of its own, and
      // the loop then expects a completion for it; the others are done.
      let settled = false;
      closing = outcome(server.close()).finally(() => (settled = true));
      for (let turn = 0; turn < 10_000 && !settled && loop.stats().completionsPending === expected; turn++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } finally {
      await loop.close();
    }
    const result = await within(closing, 'server.close() after loop.close()');
    assert.is(result.error, undefined, 'it resolves: the listener was released');
  });

  streams('operations after close() reject at once', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client } = await pair(loop);
      client.close();
      for (const op of [
        () => client.read(),
        () => client.write('x'),
        () => client.end(),
        () => client.readExactly(1),
      ]) {
        const { error } = await within(outcome(op()), 'an operation after close()');
        assert.instance(error, WasmloopError);
      }
      await shutDown(server);
    }),
  );

  const protocols = suite(`lifecycle: protocols on '${label}'`);

  /** A protocol that counts its connectionLost calls. */
  function counting() {
    const p = {
      lost: [],
      transport: null,
      connectionMade(t) {
        p.transport = t;
      },
      connectionLost(error) {
        p.lost.push(error);
      },
    };
    return p;
  }

  /** A protocol server whose connections' protocols land in `made`, and a counting client. */
  async function protocolPair(loop) {
    const made = [];
    const server = await loop.createProtocolServer(
      () => {
        const p = counting();
        made.push(p);
        return p;
      },
      { port: 0 },
    );
    const { protocol: client } = await loop.createProtocolConnection(counting, { port: server.address().port });
    await until(loop, () => made.length === 1 && made[0].transport !== null, 'accept');
    return { server, client, peer: made[0] };
  }

  /** Waits for connectionLost, then a few turns more, and checks it ran exactly once. */
  async function lostOnce(loop, protocol, what) {
    await until(loop, () => protocol.lost.length > 0, `${what}: connectionLost`);
    await turns(loop, 5);
    assert.is(protocol.lost.length, 1, `${what}: connectionLost ran once`);
    return protocol.lost[0];
  }

  for (const [name, end] of [
    ['close()', (t) => t.close()],
    ['abort()', (t) => t.abort()],
  ]) {
    protocols(`${name}: connectionLost once on both sides`, () =>
      onLoopCounted(backend, async (loop) => {
        const { server, client, peer } = await protocolPair(loop);
        end(client.transport);
        assert.is(await lostOnce(loop, client, `client ${name}`), null);
        await lostOnce(loop, peer, `peer of ${name}`);
        await shutDown(server);
      }),
    );

    protocols(`${name} with a blocked write buffer: connectionLost once`, () =>
      onLoopCounted(backend, async (loop) => {
        const { server, client, peer } = await protocolPair(loop);
        peer.transport.pauseReading();
        const chunk = new Uint8Array(64 * 1024);
        for (let i = 0; i < 4096 && client.transport.writeBufferSize() < 1024 * 1024; i++) {
          client.transport.write(chunk);
          await turns(loop, 1);
        }
        end(client.transport);
        // close() waits for the buffer, which the peer never reads: abort the peer.
        peer.transport.abort();
        await lostOnce(loop, client, `client ${name} with a full buffer`);
        await lostOnce(loop, peer, `peer of ${name}`);
        await shutDown(server);
      }),
    );
  }

  protocols('the peer resets: connectionLost once, with the error', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client, peer } = await protocolPair(loop);
      peer.transport.pauseReading();
      client.transport.write('unread by the peer');
      await turns(loop, 5);
      peer.transport.abort();
      const error = await lostOnce(loop, client, 'client after a reset');
      if (error !== null) assert.instance(error, IoError);
      await lostOnce(loop, peer, 'peer');
      await shutDown(server);
    }),
  );

  protocols('the peer writes eof: eofReceived closes, connectionLost once', () =>
    onLoopCounted(backend, async (loop) => {
      const { server, client, peer } = await protocolPair(loop);
      client.transport.writeEof();
      assert.is(await lostOnce(loop, peer, 'peer after eof'), null);
      assert.is(await lostOnce(loop, client, 'client after the peer closed'), null);
      await shutDown(server);
    }),
  );

  protocols('the loop closes: connectionLost once on every open transport', async () => {
    let protocolsSeen;
    await onLoopThenClose(
      backend,
      async (loop) => {
        const { client, peer } = await protocolPair(loop);
        protocolsSeen = [client, peer];
        return {};
      },
      async () => {
        for (const [i, p] of protocolsSeen.entries())
          assert.is(p.lost.length, 1, `transport ${i}: connectionLost once`);
      },
    );
  });

  protocols('the loop closes: a datagram endpoint hears connectionLost once', async () => {
    const lost = [];
    await onLoopThenClose(
      backend,
      async (loop) => {
        await loop.createDatagramEndpoint(() => ({ connectionLost: (error) => lost.push(error) }), {
          localAddress: { host: '127.0.0.1', port: 0 },
        });
        return {};
      },
      async () => assert.equal(lost, [null]),
    );
  });

  streams.run();
  protocols.run();
}
