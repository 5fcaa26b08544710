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
      // The first connection must stay open until the second is refused. On
      // a real clock a busy machine can stall the loop for `ms` before that,
      // and the server then rightly closes the first as idle: seen no sooner
      // than `ms` after its last activity, and the case starts over.
      let first = null;
      let endedBefore;
      let timedOutBefore;
      for (let attempt = 1; first === null; attempt++) {
        endedBefore = ended.length;
        timedOutBefore = loop.stats().connectionsTimedOut;
        const refusedBefore = loop.stats().connectionsRefused;
        // The server's last activity on the connection was no earlier than this.
        let activeSince = loop.time();
        const conn = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
        const wroteAt = loop.time();
        const wrote = await outcome(conn.write('hello'));
        const echo = wrote.error === undefined ? await within(outcome(conn.read()), 'the echo') : wrote;
        const echoed = echo.value !== undefined && echo.value !== null;
        if (echoed) {
          assert.is(text(echo.value), 'hello');
          activeSince = wroteAt;
        }
        const second = await outcome(loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS }));
        if (echoed && second.error !== undefined) {
          assert.is(loop.stats().connectionsRefused, refusedBefore + 1);
          first = conn;
          break;
        }
        const idleFor = loop.time() - activeSince;
        assert.ok(
          !virtual && ended.length > endedBefore && idleFor >= ms,
          `the first was closed ${idleFor} ms after its last activity (echoed: ${echoed}; the second: ${second.error ?? 'connected'})`,
        );
        assert.ok(attempt < 20, `the loop stalled for ${ms} ms in each of ${attempt} attempts`);
        conn.close();
        second.value?.close();
        await until(loop, () => server.connections === 0, 'the server closing both');
      }
      await drain(first);
      await until(loop, () => ended.length === endedBefore + 1, 'the handler ended');
      const timedOut = ended.at(-1);
      assert.instance(timedOut, TimeoutError);
      assert.is(timedOut.timeoutMs, ms);
      assert.is(loop.stats().connectionsTimedOut, timedOutBefore + 1);
      first.close();
      await within(server.close(), 'server.close()');
    }));

  test('readTimeoutMs: a TLS read rejects with TimeoutError and the connection goes on', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = virtual ? 1000 : 200;
      const seen = [];
      // Later reads that timed out too: on a real clock, a busy machine can
      // keep the client from writing for readTimeoutMs (never on virtual time).
      let stalled = 0;
      const server = await loop.createServer(
        async (conn) => {
          seen.push(await outcome(conn.read()));
          let late = await outcome(conn.read());
          while (!virtual && late.error instanceof TimeoutError) {
            stalled++;
            late = await outcome(conn.read());
          }
          if (late.error !== undefined) throw late.error;
          await conn.write(`got ${text(late.value)}`);
        },
        { port: 0, tls: SERVER_TLS, readTimeoutMs: ms },
      );
      const client = await loop.createConnection({ host: '127.0.0.1', port: server.address().port, tls: CLIENT_TLS });
      await until(loop, () => seen.length === 1, 'the first read timed out');
      assert.instance(seen[0].error, TimeoutError);
      await client.write('late');
      assert.is(text(await within(client.read(), 'the reply')), 'got late');
      assert.is(loop.stats().readsTimedOut, 1 + stalled);
      await drain(client);
      client.close();
      await within(server.close(), 'server.close()');
    }));

  test.run();
}
