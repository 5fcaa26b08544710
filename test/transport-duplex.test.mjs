// io/transport-duplex.ts: a loop connection as a node:stream Duplex, on
// every backend with a network: bytes both ways, backpressure both ways,
// endings, the idle timeout on the loop's clock.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { duplexProtocol } from '../ts-host/dist/io/transport-duplex.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';

const duplex = suite('TransportDuplex');

/** A server whose connections are Duplexes handed to `onDuplex`; resolves with it and its port. */
async function duplexServer(loop, onDuplex, options = { allowHalfOpen: false }) {
  const server = await loop.createProtocolServer(() => duplexProtocol(loop, onDuplex, options), { port: 0 });
  return { server, port: server.address().port };
}

/** A client connection as a Duplex (not half-open, as net.Socket's default). */
async function duplexClient(loop, port) {
  let client = null;
  await loop.createProtocolConnection(() => duplexProtocol(loop, (d) => (client = d), { allowHalfOpen: false }), {
    host: '127.0.0.1',
    port,
  });
  return client;
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}
/** Resolves once `stream` has emitted 'close' (now, if it did already). */
const whenClosed = (stream) => (stream.closed ? Promise.resolve() : once(stream, 'close'));
const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));
const sha = (buffers) => createHash('sha256').update(Buffer.concat(buffers)).digest('hex');
/** 4 MiB of bytes that are not all alike. */
const payload = () => Buffer.from(Array.from({ length: 4 * 1024 * 1024 }, (_, i) => (i * 31 + (i >> 12)) & 0xff));

for (const backend of IO_BACKENDS) {
  const label = backendLabel(backend);

  duplex(`${label}: an echo through pipe(): every byte back, in order, and the ends both ways`, () =>
    onLoop(backend, async (loop) => {
      const { server, port } = await duplexServer(loop, (d) => d.pipe(d));
      const client = await duplexClient(loop, port);
      assert.is(client.remoteAddress, '127.0.0.1');
      assert.is(client.remotePort, port);
      const data = payload();
      const got = [];
      client.on('data', (chunk) => got.push(chunk));
      const ended = once(client, 'end');
      const closed = once(client, 'close');
      for (let at = 0; at < data.length; at += 100_000) {
        if (!client.write(data.subarray(at, at + 100_000))) await once(client, 'drain');
      }
      client.end();
      await ended;
      await closed;
      assert.is(Buffer.concat(got).length, data.length);
      assert.is(sha(got), sha([data]));
      await server.close();
    }),
  );

  duplex(`${label}: a reader that does not read pauses the transport; reading again resumes it`, () =>
    onLoop(backend, async (loop) => {
      const paused = deferred();
      let serverSide = null;
      const { server, port } = await duplexServer(loop, (d) => {
        serverSide = d;
        d.pause();
        const pauseReading = d.transport.pauseReading.bind(d.transport);
        d.transport.pauseReading = () => {
          pauseReading();
          paused.resolve();
        };
      });
      const client = await duplexClient(loop, port);
      const data = payload();
      client.end(data);
      await paused.promise;
      assert.not.ok(serverSide.transport.isReading(), 'the transport stopped reading');
      assert.ok(serverSide.readableLength >= serverSide.readableHighWaterMark, 'the stream buffer is full');
      const got = [];
      serverSide.on('data', (chunk) => got.push(chunk));
      serverSide.resume();
      await once(serverSide, 'end');
      assert.is(sha(got), sha([data]));
      client.resume();
      await whenClosed(client);
      await server.close();
    }),
  );

  duplex(
    `${label}: a peer that does not read holds back write callbacks until it reads ('drain' after it resumed)`,
    () =>
      onLoop(backend, async (loop) => {
        const accepted = deferred();
        const { server, port } = await duplexServer(loop, accepted.resolve);
        const client = await duplexClient(loop, port);
        client.pause();
        const serverSide = await accepted.promise;
        const chunk = Buffer.alloc(64 * 1024, 7);
        let written = 0;
        while (serverSide.write(chunk)) {
          written += chunk.length;
          assert.ok(written < 1024 * 1024 * 1024, 'the writes never stopped being taken');
        }
        written += chunk.length;
        assert.ok(serverSide.writableNeedDrain);
        assert.ok(serverSide.transport.writeBufferSize() > 0, 'the transport holds what the kernel did not take');
        let resumed = false;
        const drained = once(serverSide, 'drain').then(() => assert.ok(resumed, "'drain' came after the peer read"));
        let received = 0;
        client.on('data', (c) => (received += c.length));
        resumed = true;
        client.resume();
        await drained;
        serverSide.end();
        await once(client, 'end');
        assert.is(received, written);
        // The client ended its side in turn (allowHalfOpen is false): both close once read to their end.
        serverSide.resume();
        await Promise.all([whenClosed(serverSide), whenClosed(client)]);
        await server.close();
      }),
  );

  duplex(`${label}: half-open by default: after the peer's end the stream still writes, then ends`, () =>
    onLoop(backend, async (loop) => {
      const { server, port } = await duplexServer(
        loop,
        (d) => {
          const got = [];
          d.on('data', (c) => got.push(c));
          d.on('end', () => d.end(`got ${Buffer.concat(got)} and the end`));
        },
        undefined,
      );
      const client = await duplexClient(loop, port);
      const reply = [];
      client.on('data', (c) => reply.push(c));
      client.end('a question');
      await once(client, 'end');
      assert.is(Buffer.concat(reply).toString(), 'got a question and the end');
      await whenClosed(client);
      await server.close();
    }),
  );

  duplex(`${label}: destroy() closes the connection; the peer's stream closes, the server empties`, () =>
    onLoop(backend, async (loop) => {
      const { server, port } = await duplexServer(loop, (d) => {
        d.write('bye');
        d.destroySoon();
      });
      const client = await duplexClient(loop, port);
      const got = [];
      client.on('data', (c) => got.push(c));
      await once(client, 'end');
      assert.is(Buffer.concat(got).toString(), 'bye');
      client.destroy();
      await whenClosed(client);
      await server.close();
    }),
  );
}

duplex("virtual: setTimeout emits 'timeout' after that much loop time without a read or a write", () =>
  onLoop('virtual', async (loop) => {
    let serverSide = null;
    const { server, port } = await duplexServer(loop, (d) => (serverSide = d));
    const client = await duplexClient(loop, port);
    while (serverSide === null) await loop.sleep(1);
    const start = loop.time();
    serverSide.setTimeout(1000);
    await loop.sleep(600);
    client.write('activity');
    await once(serverSide, 'data');
    const active = loop.time();
    await once(serverSide, 'timeout');
    assert.ok(loop.time() - active >= 1000, `${loop.time() - active} ms after the last read`);
    assert.ok(loop.time() - start >= 1600);
    serverSide.setTimeout(0);
    serverSide.destroy();
    client.resume();
    await whenClosed(client);
    await server.close();
  }),
);

duplex.run();
