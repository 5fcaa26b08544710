// I/O: one suite run against every backend (as CPython runs one test mixin
// against every selector and the Proactor loop), then faults and bad input.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import {
  AddressInUseError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  createLoop,
  IncompleteReadError,
  IoError,
  LimitOverrunError,
  LoopClosedError,
  NotSupportedError,
  WriteAfterEndError,
} from '../ts-host/dist/index.js';
import { loadSelectorAddon } from '../ts-host/dist/backends/selector.js';
import {
  HOST,
  IO_BACKENDS,
  NET_COMPLETION,
  SELECTOR,
  backendLabel,
  hostCommand,
  onLoop,
  readChunkMax,
  unansweredPort,
  unlessHostBug,
} from './helpers.mjs';
import { until } from './io-helpers.mjs';

async function echoServer(loop) {
  return loop.createServer(
    async (conn) => {
      for await (const chunk of conn) await conn.write(chunk);
      await conn.end();
    },
    { port: 0 },
  );
}

async function readAll(conn) {
  const parts = [];
  for await (const chunk of conn) parts.push(chunk);
  return Buffer.concat(parts);
}

for (const backend of IO_BACKENDS) {
  const io = suite(`streams on '${backendLabel(backend)}'`);

  io('echo: what is written comes back, then end of stream', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ host: '127.0.0.1', port: server.address().port });
      assert.is(client.remoteAddress.port, server.address().port);
      assert.is(client.localAddress.host, '127.0.0.1');
      for (const message of ['hello', 'wasmloop', 'x'.repeat(1000)]) {
        await client.write(message);
        let got = '';
        while (got.length < message.length) got += Buffer.from(await client.read()).toString();
        assert.is(got, message);
      }
      await client.end();
      assert.is(await client.read(), null);
      await server.close();
    }),
  );

  io('a write the host takes at once resolves before the next callback runs', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      const order = [];
      loop.callSoon(() => order.push('next callback'));
      await client.write('small');
      order.push('write resolved');
      await new Promise((resolve) => loop.callSoon(resolve));
      assert.equal(order, ['write resolved', 'next callback']);
      assert.is(Buffer.from(await client.read()).toString(), 'small', 'and the bytes went out');
      client.close();
      await server.close();
    }),
  );

  io('connect: a signal aborted beforehand rejects with its reason and opens nothing', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const before = loop.stats();
      const controller = new AbortController();
      controller.abort(new Error('changed my mind'));
      const error = await loop
        .createConnection({ port: server.address().port, signal: controller.signal })
        .catch((e) => e);
      assert.is(error.message, 'changed my mind');
      await loop.sleep(10);
      assert.is(server.connections, 0, 'no connection reached the server');
      assert.is(loop.stats().watchers, before.watchers);
      assert.is(loop.stats().completionsPending, before.completionsPending);
      await server.close();
    }),
  );

  io('connect: aborting while the connection is being made abandons it and leaks nothing', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const port = server.address().port;
      const before = loop.stats();
      const controller = new AbortController();
      const attempt = loop.createConnection({ port, signal: controller.signal });
      // Runs in the next iteration, before the connect's own callback.
      loop.callSoon(() => controller.abort());
      const error = await attempt.catch((e) => e);
      assert.instance(error, DOMException);
      assert.is(error.name, 'AbortError');
      assert.is(loop.stats().watchers, before.watchers, 'no watcher left behind');
      assert.is(loop.stats().completionsPending, before.completionsPending, 'no completion left expected');
      // The server may have accepted the abandoned connection: it sees it end.
      await until(
        loop,
        () => server.connections === 0,
        'the server sees the abandoned connection close',
        () => `(${server.connections} open)`,
      );
      assert.is(server.connections, 0, 'the abandoned connection was closed');
      const client = await loop.createConnection({ port });
      await client.write('still here');
      assert.is(Buffer.from(await client.read()).toString(), 'still here');
      client.close();
      await server.close();
    }),
  );

  if (backend !== 'virtual') {
    // The virtual network has no accept queue to fill.
    io('connect: a connect the peer never answers times out with loop.timeoutSignal', () =>
      onLoop(backend, async (loop) => {
        const { port, close } = await unansweredPort();
        try {
          const before = loop.stats();
          const t0 = loop.time();
          const error = await loop.createConnection({ port, signal: loop.timeoutSignal(50) }).catch((e) => e);
          assert.instance(error, DOMException, String(error));
          assert.is(error.name, 'TimeoutError');
          assert.ok(loop.time() - t0 >= 50, `gave up after ${loop.time() - t0} ms of loop time`);
          assert.is(loop.stats().watchers, before.watchers, 'no watcher left behind');
          assert.is(loop.stats().completionsPending, before.completionsPending, 'no completion left expected');
        } finally {
          await close();
        }
      }),
    );
  }

  io('connect: closing the loop while a connect is pending rejects it and releases the signal', async () => {
    const loop = await createLoop({ backend });
    const controller = new AbortController();
    let server;
    let attempt;
    await loop.runUntilComplete(async () => {
      server = await echoServer(loop);
      // The connect's own callback runs in a later iteration; the run ends first.
      attempt = loop.createConnection({ port: server.address().port, signal: controller.signal }).catch((e) => e);
    });
    await loop.close();
    const error = await attempt;
    assert.instance(error, LoopClosedError);
    assert.match(error.message, /connect: the event loop is closed/);
    controller.abort(); // nothing is listening any more: no double close, no throw
  });

  io('read: loop.timeoutSignal ends a read that gets no data; the connection goes on', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      const error = await client.read({ signal: loop.timeoutSignal(20) }).catch((e) => e);
      assert.is(error.name, 'TimeoutError');
      await client.write('after');
      assert.is(Buffer.from(await client.read()).toString(), 'after');
      client.close();
      await server.close();
    }),
  );

  io('unix domain sockets: echo, addresses, and the socket file goes when the server closes', () =>
    onLoop(backend, async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmloop-'));
      const path = join(dir, 'echo.sock');
      try {
        let serverSide = null;
        const server = await loop.createServer(
          async (conn) => {
            serverSide = conn;
            for await (const chunk of conn) await conn.write(chunk);
            await conn.end();
          },
          { path },
        );
        assert.equal(server.address(), { host: '', port: 0, family: 'unix', path });
        if (backend !== 'virtual') assert.ok(existsSync(path), 'the socket file exists while the server listens');
        const client = await loop.createConnection({ path });
        assert.is(client.remoteAddress.family, 'unix');
        assert.is(client.remoteAddress.path, path);
        for (const message of ['over a', 'unix socket', 'y'.repeat(1_000_000)]) {
          // Read while writing: a megabyte does not fit in a Unix socket's buffers.
          const writing = client.write(message);
          let got = '';
          while (got.length < message.length) got += Buffer.from(await client.read()).toString();
          await writing;
          assert.is(got, message);
        }
        assert.is(serverSide.localAddress.path, path);
        await client.end();
        assert.is(await client.read(), null);
        await server.close();
        assert.not.ok(existsSync(path), 'closing the server removed the socket file');
        const error = await loop.createConnection({ path }).catch((e) => e);
        assert.instance(error, IoError);
        assert.is(error.code, 'ENOENT');
        assert.match(error.message, path);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );

  io('unix domain sockets: a path that exists is AddressInUseError, and is left alone', () =>
    onLoop(backend, async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmloop-'));
      const path = join(dir, 'taken.sock');
      try {
        const first = await loop.createServer((conn) => conn.close(), { path });
        const error = await loop.createServer(() => {}, { path }).catch((e) => e);
        assert.instance(error, AddressInUseError);
        assert.match(error.message, path);
        const client = await loop.createConnection({ path });
        client.close();
        await first.close();
        if (backend !== 'virtual') {
          writeFileSync(path, 'not a socket');
          const onFile = await loop.createServer(() => {}, { path }).catch((e) => e);
          assert.instance(onFile, AddressInUseError, 'a plain file is not replaced');
          assert.ok(existsSync(path));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );

  /** A server that writes `parts` to each connection, a few ms apart, then ends. */
  const sender = (loop, parts) =>
    loop.createServer(
      async (conn) => {
        for (const part of parts) {
          await conn.write(part);
          await loop.sleep(3);
        }
        await conn.end();
        while ((await conn.read()) !== null);
      },
      { port: 0 },
    );
  const str = (bytes) => Buffer.from(bytes).toString();

  io('readExactly: exact byte counts across chunks; the rest stays for the next read', () =>
    onLoop(backend, async (loop) => {
      const server = await sender(loop, ['abc', 'defgh', 'ij']);
      const client = await loop.createConnection({ port: server.address().port });
      assert.is(str(await client.readExactly(4)), 'abcd');
      assert.is(str(await client.readExactly(0)), '');
      assert.is(str(await client.readExactly(3)), 'efg');
      let rest = '';
      for await (const chunk of client) rest += str(chunk);
      assert.is(rest, 'hij', 'read() and iteration return what readExactly left');
      client.close();
      await server.close();
    }),
  );

  io('readExactly: the end of the stream first is IncompleteReadError with the partial data', () =>
    onLoop(backend, async (loop) => {
      const server = await sender(loop, ['only', ' nine']);
      const client = await loop.createConnection({ port: server.address().port });
      const error = await client.readExactly(20).catch((e) => e);
      assert.instance(error, IncompleteReadError);
      assert.is(str(error.partial), 'only nine');
      assert.is(error.expected, 20);
      assert.match(error.message, /readExactly: the stream ended after 9 of 20 bytes/);
      assert.is(await client.read(), null);
      client.close();
      await server.close();
    }),
  );

  io('readUntil and readLine: lines split across chunks and several in one', () =>
    onLoop(backend, async (loop) => {
      const server = await sender(loop, ['first li', 'ne\nsecond\nthi', 'rd\r\n', 'END;tail']);
      const client = await loop.createConnection({ port: server.address().port });
      assert.is(str(await client.readLine()), 'first line\n');
      assert.is(str(await client.readUntil('\n')), 'second\n');
      assert.is(str(await client.readUntil('\r\n')), 'third\r\n');
      assert.is(str(await client.readUntil(new TextEncoder().encode('END;'))), 'END;');
      assert.is(str(await client.readLine()), 'tail', 'the last line without its newline');
      assert.is(await client.readLine(), null, 'then the end of the stream');
      client.close();
      await server.close();
    }),
  );

  io(
    'readUntil: the end of the stream first is IncompleteReadError; a long line overruns the limit and stays readable',
    () =>
      onLoop(backend, async (loop) => {
        const server = await sender(loop, ['x'.repeat(30), 'y'.repeat(30), '\nno separator']);
        const client = await loop.createConnection({ port: server.address().port });
        const overrun = await client.readUntil('\n', { limit: 40 }).catch((e) => e);
        assert.instance(overrun, LimitOverrunError);
        assert.match(overrun.message, /readUntil: no separator within the limit of 40 bytes/);
        const line = await client.readLine();
        assert.is(str(line), `${'x'.repeat(30)}${'y'.repeat(30)}\n`, 'nothing was lost to the overrun');
        const incomplete = await client.readUntil('\n').catch((e) => e);
        assert.instance(incomplete, IncompleteReadError);
        assert.is(str(incomplete.partial), 'no separator');
        assert.is(incomplete.expected, null);
        client.close();
        await server.close();
      }),
  );

  io('framed reads: a cancelled readExactly loses nothing; one read at a time', () =>
    onLoop(backend, async (loop) => {
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      const server = await loop.createServer(
        async (conn) => {
          await conn.write('12345');
          await gate;
          await conn.write('67890');
          await conn.end();
          while ((await conn.read()) !== null);
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      const controller = new AbortController();
      const waiting = client.readExactly(8, { signal: controller.signal });
      const busy = await client.read().catch((e) => e);
      assert.match(busy.message, /read: another read is pending/);
      const busyLine = await client.readLine().catch((e) => e);
      assert.match(busyLine.message, /readLine: another read is pending/);
      await loop.sleep(10);
      controller.abort();
      const error = await waiting.catch((e) => e);
      assert.is(error.name, 'AbortError');
      release();
      assert.is(str(await client.readExactly(10)), '1234567890', 'the cancelled read gave its bytes back');
      client.close();
      await server.close();
    }),
  );

  io('web streams: writable and readable carry the bytes; closing the writable ends the stream', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      const writer = client.writable.getWriter();
      await writer.write('web ');
      await writer.write(new TextEncoder().encode('streams '));
      await writer.write('x'.repeat(200_000));
      await writer.close();
      const text = await new Response(client.readable).text();
      assert.is(text, `web streams ${'x'.repeat(200_000)}`);
      assert.ok(client.closed, 'both directions ended');
      await server.close();
    }),
  );

  io('web streams: pipeTo proxies one connection into another, both ways', () =>
    onLoop(backend, async (loop) => {
      const upstream = await echoServer(loop);
      const proxy = await loop.createServer(
        async (conn) => {
          const up = await loop.createConnection({ port: upstream.address().port });
          await Promise.all([conn.readable.pipeTo(up.writable), up.readable.pipeTo(conn.writable)]);
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: proxy.address().port });
      const reply = client.readable.pipeThrough(new TextDecoderStream()).getReader();
      await client.write('through the proxy');
      let got = '';
      while (got.length < 17) got += (await reply.read()).value;
      assert.is(got, 'through the proxy');
      await client.end();
      assert.is((await reply.read()).done, true, 'the end of the stream went through too');
      await proxy.close();
      await upstream.close();
    }),
  );

  io('web streams: cancelling the readable closes the connection', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      await client.readable.cancel();
      assert.ok(client.closed);
      await until(
        loop,
        () => server.connections === 0,
        'the server sees the cancelled connection close',
        () => `(${server.connections} open)`,
      );
      assert.is(server.connections, 0, 'the server saw it close');
      await server.close();
    }),
  );

  io('host names resolve: localhost', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ host: 'localhost', port: server.address().port });
      await client.write('ok');
      assert.is(Buffer.from(await client.read()).toString(), 'ok');
      client.close();
      await server.close();
    }),
  );

  io('many concurrent connections each get their own bytes back', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const port = server.address().port;
      const clients = await Promise.all(Array.from({ length: 100 }, () => loop.createConnection({ port })));
      // Waits for the accepts, under a generous limit (emulated CPUs are slow).
      await until(
        loop,
        () => server.connections === 100,
        'the server accepts 100 connections',
        () => `(${server.connections} accepted)`,
      );
      assert.is(server.connections, 100, 'the server accepted every connection');
      await Promise.all(
        clients.map(async (client, i) => {
          for (let k = 0; k < 20; k++) {
            const message = `client ${i} message ${k};`;
            await client.write(message);
            let got = '';
            while (got.length < message.length) got += Buffer.from(await client.read()).toString();
            assert.is(got, message);
          }
          await client.end();
          assert.is(await client.read(), null);
        }),
      );
      await server.close();
      assert.is(server.connections, 0);
    }),
  );

  io('data and the end of the stream arriving together: read() returns the data, then null', () =>
    onLoop(backend, async (loop) => {
      let reading;
      const serverReading = new Promise((resolve) => (reading = resolve));
      let seen;
      const handled = new Promise((resolve) => (seen = resolve));
      const server = await loop.createServer(
        async (conn) => {
          // Waiting before the peer sends: its data and its end then arrive
          // together, and one readiness report covers both.
          const first = conn.read();
          reading();
          const data = await first;
          seen([Buffer.from(data).toString(), await conn.read()]);
          conn.close();
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      await serverReading;
      client.write('last words');
      await client.end();
      assert.equal(await loop.waitFor(handled, 5000), ['last words', null]);
      client.close();
      await server.close();
    }),
  );

  io('half-close: the peer still writes after reading our end of stream', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createServer(
        async (conn) => {
          const request = await readAll(conn);
          await conn.write(`got ${request.length} bytes: ${request}`);
          await conn.end();
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      await client.write('question');
      await client.end();
      await assert.rejects?.(client.write('more'));
      const answer = (await readAll(client)).toString();
      assert.is(answer, 'got 8 bytes: question');
      assert.ok(client.closed, 'both directions ended: the connection closed itself');
      await server.close();
    }),
  );

  io('large transfers arrive byte-exact', () =>
    onLoop(backend, async (loop) => {
      const payload = randomBytes(8 * 1024 * 1024 + 12345);
      const server = await loop.createServer(
        async (conn) => {
          const data = await readAll(conn);
          await conn.write(`${createHash('sha256').update(data).digest('hex')} ${data.length}`);
          await conn.end();
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      for (let off = 0; off < payload.length; off += 1 << 20)
        await client.write(payload.subarray(off, off + (1 << 20)));
      await client.end();
      const reply = (await readAll(client)).toString();
      assert.is(reply, `${createHash('sha256').update(payload).digest('hex')} ${payload.length}`);
      await server.close();
    }),
  );

  io('a pending read can be cancelled, and no data is lost', () =>
    onLoop(backend, async (loop) => {
      let serverSide;
      const server = await loop.createServer(
        (conn) => {
          serverSide = conn;
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      while (serverSide === undefined) await loop.sleep(1);
      const controller = new AbortController();
      const pending = client.read({ signal: controller.signal });
      loop.callLater(5, () => controller.abort(new Error('gave up')));
      try {
        await pending;
        assert.unreachable('the read was cancelled');
      } catch (error) {
        assert.is(error.message, 'gave up');
      }
      await serverSide.write('after the cancel');
      assert.is(Buffer.from(await client.read()).toString(), 'after the cancel');
      // An already aborted signal rejects at once.
      const aborted = AbortSignal.abort(new Error('already'));
      try {
        await client.read({ signal: aborted });
        assert.unreachable();
      } catch (error) {
        assert.is(error.message, 'already');
      }
      client.close();
      serverSide.close();
      await server.close();
    }),
  );

  io('server close stops accepting and waits for open connections', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const port = server.address().port;
      const client = await loop.createConnection({ port });
      await client.write('a');
      await client.read();
      let closed = false;
      const closing = server.close().then(() => {
        closed = true;
      });
      await loop.sleep(20);
      assert.not.ok(closed, 'a connection is still open');
      try {
        const late = await loop.createConnection({ port });
        late.close();
        assert.unreachable('the server no longer accepts');
      } catch (error) {
        assert.instance(error, ConnectionRefusedError);
      }
      await client.write('still served');
      assert.is(Buffer.from(await client.read()).toString(), 'still served');
      await client.end();
      assert.is(await client.read(), null);
      await closing;
      assert.ok(closed);
    }),
  );

  io('100 MB echoed byte-exact, with memory bounded per connection', () =>
    onLoop(backend, async (loop) => {
      const TOTAL = 100 * 1024 * 1024;
      let serverConn;
      const server = await loop.createServer(
        async (conn) => {
          serverConn = conn;
          for await (const chunk of conn) await conn.write(chunk);
          await conn.end();
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      const block = randomBytes(64 * 1024);
      const sent = createHash('sha256');
      const received = createHash('sha256');
      const heapBefore = process.memoryUsage().heapUsed;
      let peakHeap = heapBefore;
      const writer = (async () => {
        for (let n = 0; n < TOTAL; n += block.length) {
          block[0] = n & 0xff; // vary the data
          sent.update(block);
          await client.write(Buffer.from(block));
        }
        await client.end();
      })();
      let got = 0;
      for await (const chunk of client) {
        received.update(chunk);
        got += chunk.length;
        if ((got & 0xffffff) < chunk.length) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
      }
      await writer;
      assert.is(got, TOTAL);
      assert.is(received.digest('hex'), sent.digest('hex'));
      const bound = 64 * 1024 + readChunkMax(backend);
      assert.ok(
        serverConn.maxBuffered <= bound,
        `server buffered ${serverConn.maxBuffered} bytes (high-water mark ${bound >> 10} KiB)`,
      );
      assert.ok(peakHeap - heapBefore < 64 * 1024 * 1024, `heap grew ${(peakHeap - heapBefore) >> 20} MiB`);
      await server.close();
    }),
  );

  io.run();
}

// --------------------------------------------------------- readiness only

const readiness = suite('addReader / addWriter (selector)');

readiness('addReader on a pipe runs when data arrives; removeReader stops it', () =>
  onLoop('selector', async (loop) => {
    const addon = loadSelectorAddon();
    const [r, w] = addon.pipe();
    const got = [];
    const buffer = Buffer.alloc(64);
    const done = new Promise((resolve) => {
      loop.addReader(
        r,
        (tag) => {
          const n = readSync(r, buffer, 0, 64, null);
          got.push(`${tag}:${buffer.subarray(0, n)}`);
          if (got.length === 2) resolve();
        },
        'pipe',
      );
    });
    writeSync(w, 'one');
    // 'two' once 'one' was read: written before that, one read takes both.
    while (got.length === 0) await loop.sleep(1);
    writeSync(w, 'two');
    await done;
    assert.equal(got, ['pipe:one', 'pipe:two']);
    assert.ok(loop.removeReader(r));
    assert.not.ok(loop.removeReader(r), 'already removed');
    writeSync(w, 'three');
    await loop.sleep(10);
    assert.is(got.length, 2, 'no callback after removeReader');
    assert.is(loop.stats().watchers, 0);
    closeSync(r);
    closeSync(w);
  }),
);

readiness('addWriter runs while the pipe is writable; addReader replaces an earlier callback', () =>
  onLoop('selector', async (loop) => {
    const [r, w] = loadSelectorAddon().pipe();
    let writable = 0;
    await new Promise((resolve) =>
      loop.addWriter(w, () => {
        if (++writable === 3) {
          loop.removeWriter(w);
          resolve();
        }
      }),
    );
    assert.is(writable, 3);
    const calls = [];
    loop.addReader(r, () => calls.push('first'));
    loop.addReader(r, () => {
      calls.push('second');
      readSync(r, Buffer.alloc(16), 0, 16, null);
      loop.removeReader(r);
    });
    writeSync(w, 'x');
    await until(loop, () => calls.length > 0, 'the reader callback');
    assert.equal(calls, ['second']);
    closeSync(r);
    closeSync(w);
  }),
);

readiness(
  '600 pipes watched at once each report their own data; their descriptors can be watched again once reused',
  () =>
    onLoop('selector', async (loop) => {
      const addon = loadSelectorAddon();
      const pipes = Array.from({ length: 600 }, () => addon.pipe());
      // Past the poller's first table of 256 descriptors.
      assert.ok(Math.max(...pipes.map(([r]) => r)) > 600, 'descriptors above 600');
      const seen = new Map();
      const buffer = Buffer.alloc(16);
      const all = new Promise((resolve) => {
        for (const [r] of pipes) {
          loop.addReader(r, () => {
            const n = readSync(r, buffer, 0, 16, null);
            seen.set(r, String(buffer.subarray(0, n)));
            loop.removeReader(r);
            if (seen.size === pipes.length) resolve();
          });
        }
      });
      // Written in reverse, each with its own descriptor as the payload.
      for (const [r, w] of [...pipes].reverse()) writeSync(w, String(r));
      await all;
      for (const [r] of pipes) assert.is(seen.get(r), String(r), `pipe ${r} got its own data`);
      assert.is(loop.stats().watchers, 0);
      for (const [r, w] of pipes) {
        closeSync(r);
        closeSync(w);
      }
      // The same descriptor numbers, new pipes: nothing of the old watches is left.
      const [r2, w2] = addon.pipe();
      assert.ok(
        pipes.some(([r, w]) => r === r2 || w === r2),
        'a descriptor number was reused',
      );
      const got = new Promise((resolve) => loop.addReader(r2, () => resolve(readSync(r2, buffer, 0, 16, null))));
      writeSync(w2, 'again');
      assert.is(await got, 5);
      loop.removeReader(r2);
      closeSync(r2);
      closeSync(w2);
    }),
);

readiness('an invalid or closed fd is a clear error and nothing is registered', () =>
  onLoop('selector', async (loop) => {
    const cb = () => {};
    for (const fd of [-1, 1.5, NaN, '3', undefined]) {
      assert.throws(
        () => loop.addReader(fd, cb),
        (e) => e instanceof TypeError && /addReader: fd must be a non-negative integer/.test(e.message),
      );
    }
    assert.throws(
      () => loop.addWriter(3, 'nope'),
      (e) => e instanceof TypeError && /callback must be a function/.test(e.message),
    );
    const [r, w] = loadSelectorAddon().pipe();
    closeSync(r);
    closeSync(w);
    try {
      loop.addReader(r, cb);
      assert.unreachable('a closed fd cannot be watched');
    } catch (error) {
      assert.instance(error, IoError);
      assert.is(error.code, 'EBADF');
      assert.match(error.message, /addReader: EBADF/);
    }
    assert.is(loop.stats().watchers, 0);
    assert.not.ok(loop.removeReader(r));
  }),
);

// The selector runs on Node only (docs/hosts.md).
if (SELECTOR) readiness.run();

// ---------------------------------------------------------------- faults

const faults = suite('faults and bad input');

for (const backend of IO_BACKENDS) {
  faults(`${backendLabel(backend)}: connection refused`, () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const port = server.address().port;
      await server.close();
      try {
        await loop.createConnection({ port });
        assert.unreachable();
      } catch (error) {
        assert.instance(error, ConnectionRefusedError);
        assert.is(error.code, 'ECONNREFUSED');
        assert.match(error.message, /connect: ECONNREFUSED/);
      }
    }),
  );

  faults(`${backendLabel(backend)}: address in use`, () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      try {
        await loop.createServer(() => {}, { port: server.address().port });
        assert.unreachable();
      } catch (error) {
        assert.instance(error, AddressInUseError);
        assert.is(error.code, 'EADDRINUSE');
      }
      // The first server still works.
      const client = await loop.createConnection({ port: server.address().port });
      await client.write('ok');
      assert.is(Buffer.from(await client.read()).toString(), 'ok');
      client.close();
      await server.close();
    }),
  );

  unlessHostBug(
    faults,
    backend === NET_COMPLETION ? 'node:net reset write' : null,
    `${backendLabel(backend)}: the peer resets the connection in the middle of a write`,
    () =>
      onLoop(backend, async (loop) => {
        const server = await loop.createServer(
          async (conn) => {
            await loop.sleep(20);
            conn.close(); // unread data in its buffer: the kernel answers with a reset
          },
          { port: 0 },
        );
        const client = await loop.createConnection({ port: server.address().port });
        const big = Buffer.alloc(32 * 1024 * 1024, 7);
        try {
          await client.write(big);
          await client.write(big);
          assert.unreachable('the write was reset');
        } catch (error) {
          assert.instance(error, ConnectionResetError);
          assert.ok(['ECONNRESET', 'EPIPE'].includes(error.code), error.code);
        }
        client.close();
        await server.close();
      }),
  );

  faults(`${backendLabel(backend)}: write after end, read after close, bad data`, () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      await client.end();
      for (const attempt of [() => client.write('late'), () => client.end()]) {
        try {
          await attempt();
          assert.unreachable();
        } catch (error) {
          assert.instance(error, WriteAfterEndError);
        }
      }
      const other = await loop.createConnection({ port: server.address().port });
      try {
        await other.write(12345);
        assert.unreachable();
      } catch (error) {
        assert.instance(error, TypeError);
        assert.match(error.message, /write: data must be a Uint8Array or a string, got number/);
      }
      other.close();
      other.close();
      for (const attempt of [() => other.read(), () => other.write('x'), () => other.end()]) {
        try {
          await attempt();
          assert.unreachable();
        } catch (error) {
          assert.instance(error, ConnectionClosedError);
        }
      }
      client.close();
      await server.close();
    }),
  );

  faults(
    `${backendLabel(backend)}: a read with a signal that is not an AbortSignal rejects, and the connection goes on`,
    () =>
      onLoop(backend, async (loop) => {
        const server = await echoServer(loop);
        const client = await loop.createConnection({ port: server.address().port });
        const error = await client.read({ signal: 5 }).catch((e) => e);
        assert.instance(error, TypeError);
        assert.match(error.message, /read: signal must be an AbortSignal, got number 5/);
        await client.write('fine');
        assert.is(Buffer.from(await client.read()).toString(), 'fine');
        client.close();
        await server.close();
      }),
  );

  faults(`${backendLabel(backend)}: framed reads refuse bad arguments with errors naming them`, () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      const cases = [
        [() => client.readExactly(-1), RangeError, /readExactly: n must be an integer >= 0, got number -1/],
        [() => client.readExactly(1.5), RangeError, /n must be an integer >= 0, got number 1.5/],
        [() => client.readExactly('4'), TypeError, /readExactly: n must be a number of bytes, got string "4"/],
        [() => client.readUntil(''), TypeError, /readUntil: separator must not be empty/],
        [() => client.readUntil(42), TypeError, /readUntil: data must be a Uint8Array or a string/],
        [
          () => client.readUntil('\n', { limit: 0 }),
          RangeError,
          /readUntil: limit must be an integer >= 1, got number 0/,
        ],
        [() => client.readLine({ limit: 'big' }), RangeError, /readLine: limit must be an integer >= 1/],
        [() => client.readExactly(1, { signal: 'x' }), TypeError, /read: signal must be an AbortSignal/],
      ];
      for (const [attempt, ErrorClass, pattern] of cases) {
        const error = await attempt().catch((e) => e);
        assert.instance(error, ErrorClass, String(pattern));
        assert.match(error.message, pattern);
      }
      await client.write('still fine\n');
      assert.is(Buffer.from(await client.readLine()).toString(), 'still fine\n');
      client.close();
      await server.close();
    }),
  );

  faults(`${backendLabel(backend)}: a pending read rejects when its connection is closed`, () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const client = await loop.createConnection({ port: server.address().port });
      const pending = client.read();
      loop.callLater(5, () => client.close());
      try {
        await pending;
        assert.unreachable();
      } catch (error) {
        assert.instance(error, ConnectionClosedError);
      }
      await server.close();
    }),
  );

  faults(`${backendLabel(backend)}: bad addresses are rejected with errors naming them`, () =>
    onLoop(backend, async (loop) => {
      const cases = [
        [
          () => loop.createServer(() => {}, { port: 70000 }),
          RangeError,
          /createServer: port must be an integer from 0 to 65535, got number 70000/,
        ],
        [() => loop.createServer(() => {}, { port: -1 }), RangeError, /port/],
        [() => loop.createServer(() => {}, null), TypeError, /options must be an object/],
        [() => loop.createServer('handler', { port: 0 }), TypeError, /callback must be a function/],
        [
          () => loop.createServer(() => {}, { port: 0, backlog: 0 }),
          RangeError,
          /backlog must be an integer from 1 to 2147483647/,
        ],
        [
          () => loop.createConnection({ port: 0 }),
          RangeError,
          /createConnection: port must be an integer from 1 to 65535/,
        ],
        [() => loop.createConnection({ host: '', port: 80 }), TypeError, /host must be a non-empty string/],
        [
          () => loop.createConnection({ host: 'no-such-host.invalid', port: 80 }),
          IoError,
          /cannot resolve no-such-host.invalid/,
        ],
        [
          () => loop.createConnection({ port: 80, signal: 'soon' }),
          TypeError,
          /createConnection: signal must be an AbortSignal, got string "soon"/,
        ],
        [
          () => loop.createServer(() => {}, { path: '' }),
          TypeError,
          /createServer: path must be a non-empty string, got string ""/,
        ],
        [
          () => loop.createConnection({ path: 42 }),
          TypeError,
          /createConnection: path must be a non-empty string, got number 42/,
        ],
        [
          () => loop.createServer(() => {}, { path: '/tmp/x.sock', port: 80 }),
          TypeError,
          /createServer: give a path or a host and port, not both/,
        ],
        [
          () => loop.createConnection({ path: '/tmp/x.sock', host: '127.0.0.1' }),
          TypeError,
          /give a path or a host and port, not both/,
        ],
        [
          () => loop.createServer(() => {}, { path: `/tmp/${'x'.repeat(120)}` }),
          RangeError,
          /createServer: path must be at most 107 bytes \(a Unix socket's limit\), got 125/,
        ],
        [() => loop.createServer(() => {}, { path: '/tmp/a\0b' }), TypeError, /path must not contain NUL characters/],
        [
          () => loop.createServer(() => {}, { path: '/tmp/x.sock', reusePort: true }),
          TypeError,
          /createServer: reusePort is for TCP ports, not a path/,
        ],
        [() => loop.createConnection({ port: 80, signal: null }), TypeError, /signal must be an AbortSignal, got null/],
        [
          () => loop.createProtocolConnection(() => ({}), { port: 80, signal: {} }),
          TypeError,
          /createProtocolConnection: signal must be an AbortSignal, got an object/,
        ],
      ];
      for (const [attempt, ErrorClass, pattern] of cases) {
        try {
          await attempt();
          assert.unreachable(String(pattern));
        } catch (error) {
          assert.instance(error, ErrorClass, `${pattern}: ${error}`);
          assert.match(error.message, pattern);
        }
      }
    }),
  );

  faults(
    `${backendLabel(backend)}: a connection handler that throws has its connection closed and the error reported`,
    () =>
      onLoop(backend, async (loop) => {
        const reports = [];
        loop.setExceptionHandler((_, context) => reports.push(context));
        const server = await loop.createServer(
          async (conn) => {
            await conn.read();
            throw new Error('handler broke');
          },
          { port: 0 },
        );
        const client = await loop.createConnection({ port: server.address().port });
        await client.write('trigger');
        assert.is(await client.read(), null, 'the server closed the connection');
        assert.is(reports.length, 1);
        assert.is(reports[0].error.message, 'handler broke');
        client.close();
        await server.close();
      }),
  );

  faults(`${backendLabel(backend)}: closing the loop closes its servers and connections`, async () => {
    const loop = await createLoop({ backend });
    const server = await loop.runUntilComplete(() => echoServer(loop));
    const client = await loop.runUntilComplete(() => loop.createConnection({ port: server.address().port }));
    await loop.close();
    assert.ok(client.closed);
    const other = await createLoop({ backend });
    try {
      await other.runUntilComplete(() => other.createConnection({ port: server.address().port }));
      assert.unreachable();
    } catch (error) {
      assert.instance(error, ConnectionRefusedError);
    }
    await other.close();
  });
}

/**
 * Runs test/fixtures/emfile-server.mjs with few descriptors and connects
 * `count` clients to it; the server waits up to `waitMs` of loop time for
 * them (the whole of it where connections are shed and never all get in).
 */
async function outOfDescriptors(backend, count, waitMs) {
  const fixture = fileURLToPath(new URL('./fixtures/emfile-server.mjs', import.meta.url));
  const [command, args] = hostCommand(fixture, backend, String(count), String(waitMs));
  const child = spawn('bash', ['-c', 'ulimit -n 48 && exec "$0" "$@"', command, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = [];
  const clients = [];
  let buffered = '';
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.stdout.on('data', (data) => {
    buffered += data;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      lines.push(line);
      if (line.startsWith('port ')) {
        for (let i = 0; i < count; i++) {
          const client = netConnect(Number(line.slice(5)), '127.0.0.1');
          client.on('error', () => undefined);
          clients.push(client);
        }
      }
    }
  });
  const code = await exited;
  for (const client of clients) client.destroy();
  assert.is(code, 0, `the server exited with ${code}`);
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * Whether the loop idled through outOfDescriptors's pause: every iteration
 * was a timer's (the back-off's retries, the pause's own sleep) or the one
 * accept attempt a retry makes, with a few to spare for the pause's start
 * and end. A listener that spins on the failing accept iterates without
 * timers, thousands of times. Counted per timer, not per ms of the pause: a
 * busy machine runs fewer iterations, never more per timer.
 */
const idles = ({ iterationsWhilePaused, timersWhilePaused }) => iterationsWhilePaused <= 2 * timersWhilePaused + 3;
const idlesDetail = ({ iterationsWhilePaused, timersWhilePaused }) =>
  `${iterationsWhilePaused} iterations for ${timersWhilePaused} timers (at most two per timer, and 3 more)`;

// Bun's listener accepts on its own and reports no failed accept: on Bun
// its backend is checked as node:net is, below.
for (const backend of SELECTOR ? ['selector', 'completion'] : HOST === 'bun' ? [] : ['completion']) {
  unlessHostBug(
    faults,
    'emfile',
    `${backendLabel(backend)}: out of descriptors, a server pauses accepting, reports it once, and resumes`,
    async () => {
      // Every connection gets in in the end: a limit against a hang.
      const result = await outOfDescriptors(backend, 60, 20_000);
      assert.ok(result.reports.length >= 1, 'the failure is reported');
      // An episode ends when an accept succeeds; closing makes room, accepting fills it again: a few episodes.
      assert.ok(result.reports.length <= 3, `one report per episode, not one per attempt: ${result.reports.length}`);
      assert.match(
        result.reports[0],
        /^accept failed \(EMFILE\): the server serves its open connections and retries accepting/,
      );
      assert.ok(idles(result), `the loop idles while paused: ${idlesDetail(result)}`);
      assert.is(result.accepted, 60, 'every connection is accepted once descriptors are free again');
    },
  );
}

for (const backend of HOST === 'bun' ? [NET_COMPLETION, 'completion'] : [NET_COMPLETION]) {
  unlessHostBug(
    faults,
    'emfile',
    `${backendLabel(backend)}: out of descriptors, the server neither spins nor crashes`,
    async () => {
      // Node's own listener sheds connections it cannot accept (libuv's EMFILE
      // handling), and Bun's stops taking them, so not all get in; none of it
      // may spin or throw.
      // Some never get in: the server waits the whole time.
      const result = await outOfDescriptors(backend, 60, 5000);
      assert.ok(result.accepted > 0 && result.accepted <= 60);
      assert.ok(idles(result), `the loop idles: ${idlesDetail(result)}`);
    },
  );
}

faults('completion: addReader and addWriter are not supported', () =>
  onLoop('completion', async (loop) => {
    for (const attempt of [
      () => loop.addReader(0, () => {}),
      () => loop.addWriter(1, () => {}),
      () => loop.removeReader(0),
    ]) {
      assert.throws(
        attempt,
        (e) => e instanceof NotSupportedError && /the 'completion' backend has no readiness I\/O/.test(e.message),
      );
    }
  }),
);

faults.run();
