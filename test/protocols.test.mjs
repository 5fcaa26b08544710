// Protocols and transports (asyncio's callback API for TCP): one suite run
// against every backend, then faults and bad input.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { ConnectionClosedError, createLoop, WriteAfterEndError } from '../ts-host/dist/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IO_BACKENDS, REAL_BACKEND, SELECTOR, backendLabel, onLoop } from './helpers.mjs';
import { until } from './io-helpers.mjs';

const text = (chunks) => Buffer.concat(chunks).toString();

/** A protocol that records what happened to it, and can be awaited until its connection is lost. */
class Recorder {
  constructor(events = []) {
    this.events = events;
    this.chunks = [];
    this.lost = new Promise((resolve) => (this.onLost = resolve));
  }
  connectionMade(transport) {
    this.transport = transport;
    this.events.push('made');
  }
  dataReceived(data) {
    this.chunks.push(Buffer.from(data));
  }
  eofReceived() {
    this.events.push('eof');
  }
  connectionLost(error) {
    this.events.push(error === null ? 'lost' : `lost: ${error.code ?? error.message}`);
    this.onLost(error);
  }
}

/** An echo protocol that ends its side once the peer has ended. */
class Echo {
  connectionMade(transport) {
    this.transport = transport;
  }
  dataReceived(data) {
    this.transport.write(data);
  }
}

/**
 * A connection from a writer that records pauseWriting and resumeWriting to
 * a server whose side records what arrived (`pauseAtOnce`: it reads nothing
 * until told to).
 */
async function flowPair(loop, { pauseAtOnce = false } = {}) {
  let serverSide;
  const server = await loop.createProtocolServer(
    () => {
      serverSide = new Recorder();
      if (pauseAtOnce) {
        serverSide.connectionMade = (transport) => {
          serverSide.transport = transport;
          transport.pauseReading();
        };
      }
      return serverSide;
    },
    { port: 0 },
  );
  const writer = new Recorder();
  writer.pauseWriting = () => writer.events.push('pause');
  writer.resumeWriting = () => writer.events.push('resume');
  const { transport } = await loop.createProtocolConnection(() => writer, { port: server.address().port });
  while (serverSide?.transport === undefined) await loop.sleep(1);
  return { server, serverSide, writer, transport };
}

for (const backend of IO_BACKENDS) {
  const proto = suite(`protocols on '${backendLabel(backend)}'`);

  proto('over a unix domain socket: the same callbacks, in the same order', () =>
    onLoop(backend, async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmloop-'));
      const path = join(dir, 'proto.sock');
      try {
        const server = await loop.createProtocolServer(() => new Echo(), { path });
        assert.is(server.address().path, path);
        const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), { path });
        assert.is(transport.remoteAddress.family, 'unix');
        transport.write('ping over unix');
        await until(
          loop,
          () => text(protocol.chunks).length >= 14,
          'the echo over unix',
          () => `(got ${JSON.stringify(text(protocol.chunks))})`,
        );
        assert.is(text(protocol.chunks), 'ping over unix');
        transport.close();
        await protocol.lost;
        assert.equal(protocol.events, ['made', 'lost']);
        await server.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );

  proto('connect: aborting the signal while connecting abandons it; no protocol is made', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createProtocolServer(() => new Echo(), { port: 0 });
      const before = loop.stats();
      const controller = new AbortController();
      let made = 0;
      const attempt = loop.createProtocolConnection(
        () => {
          made++;
          return new Recorder();
        },
        { port: server.address().port, signal: controller.signal },
      );
      loop.callSoon(() => controller.abort());
      const error = await attempt.catch((e) => e);
      assert.is(error.name, 'AbortError');
      assert.is(made, 0, 'the protocol factory never ran');
      assert.is(loop.stats().watchers, before.watchers);
      assert.is(loop.stats().completionsPending, before.completionsPending);
      await server.close();
    }),
  );

  proto('echo: connectionMade, dataReceived, eofReceived and connectionLost in order', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createProtocolServer(() => new Echo(), { port: 0 });
      const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), {
        host: '127.0.0.1',
        port: server.address().port,
      });
      assert.is(protocol.transport, transport, 'connectionMade ran before the connection resolved');
      assert.is(transport.remoteAddress.port, server.address().port);
      assert.ok(transport.isReading());
      transport.write('hello, ');
      transport.write(new TextEncoder().encode('protocols'));
      while (text(protocol.chunks).length < 16) await loop.sleep(1);
      assert.is(text(protocol.chunks), 'hello, protocols');
      transport.writeEof();
      // The echo server's eofReceived is absent, so it closes: we read the end.
      assert.is(await protocol.lost, null);
      assert.equal(protocol.events, ['made', 'eof', 'lost']);
      assert.ok(transport.isClosing());
      await server.close();
      assert.is(server.connections, 0);
    }),
  );

  proto('data and the end of the stream arriving together: dataReceived, then eofReceived', () =>
    onLoop(backend, async (loop) => {
      let made;
      const serverSide = new Promise((resolve) => (made = resolve));
      const server = await loop.createProtocolServer(
        () => {
          const recorder = new Recorder();
          made(recorder);
          return recorder;
        },
        { port: 0 },
      );
      const { transport } = await loop.createProtocolConnection(() => new Recorder(), {
        host: '127.0.0.1',
        port: server.address().port,
      });
      const peer = await serverSide;
      // The server side reads already; both arrive before it reads again.
      transport.write('last words');
      transport.writeEof();
      assert.is(await loop.waitFor(peer.lost, 5000), null);
      assert.is(text(peer.chunks), 'last words');
      assert.equal(peer.events, ['made', 'eof', 'lost']);
      transport.close();
      await server.close();
    }),
  );

  proto('half-close: eofReceived returning true keeps the transport open to write the rest', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createProtocolServer(
        () => ({
          got: [],
          connectionMade(t) {
            this.t = t;
          },
          dataReceived(d) {
            this.got.push(Buffer.from(d));
          },
          eofReceived() {
            this.t.write(`you said: ${text(this.got)}`);
            this.t.close();
            return true;
          },
        }),
        { port: 0 },
      );
      const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), {
        port: server.address().port,
      });
      transport.write('question');
      transport.writeEof();
      await protocol.lost;
      assert.is(text(protocol.chunks), 'you said: question');
      assert.equal(protocol.events, ['made', 'eof', 'lost']);
      await server.close();
    }),
  );

  proto('flow control: pauseWriting past the high-water mark, resumeWriting once drained; every byte arrives', () =>
    onLoop(backend, async (loop) => {
      const { server, serverSide, writer, transport } = await flowPair(loop);
      serverSide.transport.pauseReading();
      assert.not.ok(serverSide.transport.isReading());
      transport.setWriteBufferLimits(64 * 1024, 16 * 1024);
      const block = new Uint8Array(256 * 1024).fill(7);
      for (let i = 0; i < 200 && !writer.events.includes('pause'); i++) {
        transport.write(block);
        await loop.sleep(1);
      }
      assert.ok(writer.events.includes('pause'), 'the writer was told to pause');
      const sent = serverSide.chunks.length;
      await loop.sleep(5);
      assert.is(serverSide.chunks.length, sent, 'no dataReceived while reading is paused');
      serverSide.transport.resumeReading();
      while (!writer.events.includes('resume')) await loop.sleep(1);
      transport.close();
      await serverSide.lost;
      const total = serverSide.chunks.reduce((n, c) => n + c.length, 0);
      assert.ok(total >= 256 * 1024 && total % (256 * 1024) === 0, `whole blocks arrived: ${total}`);
      assert.ok(
        serverSide.chunks.every((c) => c.every((b) => b === 7)),
        'byte-exact',
      );
      assert.is(transport.writeBufferSize(), 0);
      await server.close();
    }),
  );

  proto('write() keeps a copy: the caller may change its array at once; text is counted in UTF-8 bytes', () =>
    onLoop(backend, async (loop) => {
      const { server, serverSide, writer, transport } = await flowPair(loop, { pauseAtOnce: true });
      // The peer reads nothing yet: small writes the system took, then
      // writes it could not, which the transport or the host keeps.
      const expected = [];
      const scratch = new Uint8Array(64 * 1024);
      const bigScratch = new Uint8Array(256 * 1024);
      const words = 'ünïcödé € 😀 ';
      for (let i = 0; i < 64 && !writer.events.includes('pause'); i++) {
        const small = scratch.subarray(0, 100 + i).fill(i);
        transport.write(small);
        expected.push(Buffer.from(small));
        small.fill(255);
        const big = bigScratch.fill(i + 1);
        transport.write(big);
        expected.push(Buffer.from(big));
        big.fill(255);
        const text = `${words.repeat(i + 1)}${i}`;
        transport.write(text);
        expected.push(Buffer.from(text));
      }
      assert.ok(writer.events.includes('pause'), 'the system did not take everything at once');
      // Text longer than any scratch buffer a host encodes into.
      const long = words.repeat(3000);
      transport.write(long);
      expected.push(Buffer.from(long));
      assert.ok(transport.writeBufferSize() > 0);
      serverSide.transport.resumeReading();
      const want = Buffer.concat(expected);
      while (serverSide.chunks.reduce((n, c) => n + c.length, 0) < want.length) await loop.sleep(1);
      assert.ok(Buffer.concat(serverSide.chunks).equals(want), 'every byte as it was when write() was called');
      while (transport.writeBufferSize() > 0) await loop.sleep(1);
      assert.ok(writer.events.includes('resume'), 'resumeWriting once the UTF-8 bytes counted were written');
      transport.close();
      await writer.lost;
      await server.close();
    }),
  );

  proto('close flushes, abort drops; writes after them and after writeEof are errors', () =>
    onLoop(backend, async (loop) => {
      const received = new Recorder();
      const server = await loop.createProtocolServer(() => received, { port: 0 });
      const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), {
        port: server.address().port,
      });
      transport.write('last words');
      transport.close();
      transport.close();
      assert.ok(transport.isClosing());
      assert.throws(
        () => transport.write('more'),
        (e) => e instanceof ConnectionClosedError && /write: the transport is closing/.test(e.message),
      );
      await protocol.lost;
      await received.lost;
      assert.is(text(received.chunks), 'last words');

      const other = await loop.createProtocolConnection(() => new Recorder(), { port: server.address().port });
      other.transport.writeEof();
      assert.throws(
        () => other.transport.write('x'),
        (e) => e instanceof WriteAfterEndError,
      );
      other.transport.abort();
      other.transport.abort();
      assert.is(await other.protocol.lost, null);
      assert.equal(other.protocol.events, ['made', 'lost']);
      await server.close();
    }),
  );

  proto.run();
}

// ---------------------------------------------------------------- faults

const faults = suite('protocols: faults and bad input');

for (const backend of [...(SELECTOR ? ['selector'] : []), 'completion', 'virtual']) {
  faults(`${backend}: a protocol method that throws is reported, and its transport aborted with the error`, () =>
    onLoop(backend, async (loop) => {
      const reports = [];
      loop.setExceptionHandler((_l, context) => reports.push(context));
      const boom = new Error('boom');
      let lost;
      const lostOnce = new Promise((resolve) => (lost = resolve));
      const server = await loop.createProtocolServer(
        () => ({
          dataReceived() {
            throw boom;
          },
          connectionLost: (error) => lost(error),
        }),
        { port: 0 },
      );
      const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), {
        port: server.address().port,
      });
      transport.write('trigger');
      assert.is(await lostOnce, boom, 'connectionLost gets the error');
      await protocol.lost;
      assert.is(reports.length, 1);
      assert.match(reports[0].message, /protocol\.dataReceived\(\) failed; its transport was aborted/);
      assert.is(reports[0].error, boom);
      // The server goes on serving.
      const again = await loop.createProtocolConnection(() => new Recorder(), { port: server.address().port });
      assert.equal(again.protocol.events, ['made']);
      again.transport.close();
      await server.close();
    }),
  );

  faults(`${backend}: a protocol factory that throws or returns no object is reported; the server goes on`, () =>
    onLoop(backend, async (loop) => {
      const reports = [];
      loop.setExceptionHandler((_l, context) => reports.push(context));
      const outcomes = [
        () => {
          throw new Error('no protocol today');
        },
        () => 42,
        () => new Echo(),
      ];
      let n = 0;
      const server = await loop.createProtocolServer(() => outcomes[n++](), { port: 0 });
      for (let i = 0; i < 2; i++) {
        const { protocol } = await loop.createProtocolConnection(() => new Recorder(), { port: server.address().port });
        await protocol.lost;
      }
      assert.is(reports.length, 2);
      assert.match(reports[0].message, /createProtocolServer: the protocol factory failed; the connection was closed/);
      assert.match(String(reports[0].error), /no protocol today/);
      assert.match(
        String(reports[1].error),
        /TypeError: createProtocolServer: protocolFactory must return a protocol object, got number 42/,
      );
      const { transport, protocol } = await loop.createProtocolConnection(() => new Recorder(), {
        port: server.address().port,
      });
      transport.write('still serving');
      while (text(protocol.chunks).length < 13) await loop.sleep(1);
      assert.is(text(protocol.chunks), 'still serving');
      transport.close();
      await server.close();
    }),
  );
}

faults('bad arguments are TypeErrors and RangeErrors that name them', () =>
  onLoop(REAL_BACKEND, async (loop) => {
    for (const [call, pattern] of [
      [
        () => loop.createProtocolServer('nope', { port: 0 }),
        /createProtocolServer: protocolFactory must be a function, got string/,
      ],
      [
        () => loop.createProtocolConnection(null, { port: 1 }),
        /createProtocolConnection: protocolFactory must be a function, got null/,
      ],
      [
        () => loop.createProtocolServer(() => new Echo(), { port: -1 }),
        /createProtocolServer: port must be an integer/,
      ],
      [() => loop.createProtocolConnection(() => new Echo(), { port: 1, host: 5 }), /createProtocolConnection: host/],
    ]) {
      try {
        await call();
        assert.unreachable('should have thrown');
      } catch (error) {
        assert.match(String(error), pattern);
      }
    }
    const server = await loop.createProtocolServer(() => new Echo(), { port: 0 });
    let made = false;
    try {
      await loop.createProtocolConnection(
        () => {
          made = true;
          return 'not a protocol';
        },
        { port: server.address().port },
      );
      assert.unreachable('a factory returning a string must fail');
    } catch (error) {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /createProtocolConnection: protocolFactory must return a protocol object, got string/,
      );
    }
    assert.ok(made);
    const { transport } = await loop.createProtocolConnection(() => new Recorder(), { port: server.address().port });
    assert.throws(
      () => transport.setWriteBufferLimits(-1),
      (e) => e instanceof RangeError && /high must be a non-negative integer, got -1/.test(e.message),
    );
    assert.throws(
      () => transport.setWriteBufferLimits(10, 20),
      (e) => e instanceof RangeError && /low \(20\) must not exceed high \(10\)/.test(e.message),
    );
    assert.throws(
      () => transport.write(17),
      (e) => e instanceof TypeError && /write: data must be a Uint8Array or a string, got number/.test(e.message),
    );
    transport.setWriteBufferLimits(1024);
    transport.close();
    await server.close();
  }),
);

faults('protocol servers and connections need I/O: the clock backend says so', () =>
  onLoop('clock', async (loop) => {
    for (const call of [
      () => loop.createProtocolServer(() => new Echo(), { port: 0 }),
      () => loop.createProtocolConnection(() => new Echo(), { port: 1 }),
    ]) {
      try {
        await call();
        assert.unreachable();
      } catch (error) {
        assert.match(error.message, /the 'clock' backend has no I\/O/);
      }
    }
  }),
);

faults(
  'a custom completion backend that calls a write back twice is heard once: every byte as written, the buffer drains to 0',
  async () => {
    const loop = await createLoop({ backend: './test/fixtures/backends.mjs:doubleDoneNet' });
    try {
      await loop.runUntilComplete(async () => {
        const { server, serverSide, writer, transport } = await flowPair(loop);
        const expected = [];
        const block = new Uint8Array(40_000);
        let n = 0;
        // Twice: writes the host keeps (the peer reads nothing), then all of
        // them finished, each called back twice; the second round's copies
        // take the buffers the first round's gave back.
        for (let round = 0; round < 2; round++) {
          serverSide.transport.pauseReading();
          writer.events.length = 0;
          for (let i = 0; i < 400 && !writer.events.includes('pause'); i++) {
            block.fill(++n & 0xff);
            transport.write(block);
            expected.push(Buffer.from(block));
          }
          assert.ok(writer.events.includes('pause'), `round ${round}: the host kept writes`);
          serverSide.transport.resumeReading();
          while (transport.writeBufferSize() > 0) await loop.sleep(1);
          await loop.sleep(5); // the second calls
          assert.is(transport.writeBufferSize(), 0, 'each write counted off once');
        }
        const want = Buffer.concat(expected);
        while (serverSide.chunks.reduce((k, c) => k + c.length, 0) < want.length) await loop.sleep(1);
        assert.ok(Buffer.concat(serverSide.chunks).equals(want), 'every byte as it was when write() was called');
        transport.close();
        await writer.lost;
        await server.close();
      });
    } finally {
      await loop.close();
    }
  },
);

faults('closing the loop aborts its transports and closes its protocol servers', async () => {
  const loop = await createLoop({ backend: REAL_BACKEND });
  const { server, transport } = await loop.runUntilComplete(async () => {
    const s = await loop.createProtocolServer(() => new Echo(), { port: 0 });
    const c = await loop.createProtocolConnection(() => new Recorder(), { port: s.address().port });
    c.transport.write(new Uint8Array(8));
    return { server: s, transport: c.transport };
  });
  await loop.close();
  assert.ok(transport.isClosing());
  assert.is(server.connections, 0);
});

faults.run();
