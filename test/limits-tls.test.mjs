// Limits over TLS, on every backend with a network: maxConnections refuses
// below the TLS layer, before a handshake; idleTimeoutMs and readTimeoutMs
// are the TLS connection's (they count the bytes the program reads and
// writes, after the handshake, which handshakeTimeoutMs bounds), with the
// same TimeoutError as a plain connection's.
import * as assert from 'uvu/assert';
import { TimeoutError, createLoop } from '../ts-host/dist/index.js';
import { suite } from './harness.mjs';
import { IO_BACKENDS, backendLabel } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const SERVER_TLS = { key: certs.server.key, cert: certs.server.cert };
const CLIENT_TLS = { ca: certs.ca.cert };

async function onLoop(backend, fn) {
  const loop = await createLoop({ backend });
  const reports = [];
  loop.setExceptionHandler((_loop, context) => reports.push(`${context.message}: ${context.error}`));
  try {
    await loop.runUntilComplete(() => fn(loop, backend === 'virtual'));
    const { timersPending, watchers, completionsPending } = loop.stats();
    assert.equal(
      { timersPending, watchers, completionsPending },
      { timersPending: 0, watchers: 0, completionsPending: 0 },
    );
    assert.equal(reports, [], 'nothing was reported');
  } finally {
    await loop.close();
  }
}

const text = (bytes) => (bytes === null ? null : Buffer.from(bytes).toString());

/** Reads `conn` to its end; a reset counts as the end. */
async function drain(conn) {
  for (;;) {
    const { value, error } = await within(outcome(conn.read()), 'the end of the stream');
    if (error !== undefined && !/ECONNRESET|EPIPE/.test(String(error))) throw error;
    if (error !== undefined || value === null) return;
  }
}

for (const backend of IO_BACKENDS) {
  const test = suite(`limits over TLS on '${backendLabel(backend)}'`);

  test('maxConnections and idleTimeoutMs: one too many is closed before its handshake; an idle one after', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = virtual ? 1000 : 300;
      const ended = [];
      const server = await loop.createServer(
        async (conn) => {
          try {
            for await (const chunk of conn) await conn.write(chunk);
          } catch (error) {
            ended.push(error);
            throw error;
          }
        },
        { port: 0, tls: SERVER_TLS, maxConnections: 1, idleTimeoutMs: ms },
      );
      const port = server.address().port;
      const first = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
      await first.write('hello');
      assert.is(text(await within(first.read(), 'the echo')), 'hello');
      const second = await outcome(loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS }));
      assert.ok(second.error !== undefined, 'the second never completes its handshake');
      assert.is(loop.stats().connectionsRefused, 1);
      await drain(first);
      await until(loop, () => ended.length === 1, 'the handler ended');
      assert.instance(ended[0], TimeoutError);
      assert.is(ended[0].timeoutMs, ms);
      assert.is(loop.stats().connectionsTimedOut, 1);
      first.close();
      await within(server.close(), 'server.close()');
    }));

  test('readTimeoutMs: a TLS read rejects with TimeoutError and the connection goes on', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = virtual ? 1000 : 200;
      const seen = [];
      const server = await loop.createServer(
        async (conn) => {
          seen.push(await outcome(conn.read()));
          const late = await conn.read();
          await conn.write(`got ${text(late)}`);
        },
        { port: 0, tls: SERVER_TLS, readTimeoutMs: ms },
      );
      const client = await loop.createConnection({ host: '127.0.0.1', port: server.address().port, tls: CLIENT_TLS });
      await until(loop, () => seen.length === 1, 'the first read timed out');
      assert.instance(seen[0].error, TimeoutError);
      await client.write('late');
      assert.is(text(await within(client.read(), 'the reply')), 'got late');
      assert.is(loop.stats().readsTimedOut, 1);
      await drain(client);
      client.close();
      await within(server.close(), 'server.close()');
    }));

  test.run();
}
