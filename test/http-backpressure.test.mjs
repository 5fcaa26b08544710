// Backpressure both ways, on a connection's protocol object with a
// transport that records what the server asked of it: a handler that does
// not read pauses the socket's reading; a client that does not read stops
// the server pulling the response body.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { loadParser } from '../ts-host/dist/http/parser.js';
import { HttpProtocol } from '../ts-host/dist/http/protocol.js';
import { HTTP_DEFAULTS } from '../ts-host/dist/http/server.js';
import { BODY_HIGH_WATER_BYTES } from '../ts-host/dist/http/exchange.js';
import { onLoop } from './helpers.mjs';

const parser = await loadParser();

/** A protocol on a recording transport. */
function connect(loop, fetch, limits = {}) {
  const context = {
    loop,
    parser,
    fetch,
    ...HTTP_DEFAULTS,
    maxHeaders: 100,
    ...limits,
    connections: new Set(),
    closing: false,
    defaultHost: 'test',
    onEmpty: null,
  };
  const address = { family: 'IPv4', host: '127.0.0.1', port: 1 };
  const log = { reading: true, pauses: 0, written: [], closed: false };
  const transport = {
    write(data) {
      log.written.push(typeof data === 'string' ? data : new TextDecoder('latin1').decode(data));
    },
    writeEof() {},
    close() {
      log.closed = true;
    },
    abort() {
      log.closed = true;
    },
    isClosing: () => log.closed,
    pauseReading() {
      log.reading = false;
      log.pauses++;
    },
    resumeReading() {
      log.reading = true;
    },
    isReading: () => log.reading,
    writeBufferSize: () => 0,
    setWriteBufferLimits() {},
    localAddress: address,
    remoteAddress: address,
  };
  const protocol = new HttpProtocol(context);
  protocol.connectionMade(transport);
  return { protocol, log };
}

/** Yields to the loop until `ready()` (virtual time: no waiting on the wall clock). */
async function until(loop, ready) {
  for (let i = 0; i < 1000 && !ready(); i++) await loop.sleep(1);
  assert.ok(ready(), 'the condition came true');
}

const bp = suite('backpressure');

bp('a handler that does not read: reading pauses past the high-water mark, resumes as it reads', () =>
  onLoop('virtual', async (loop) => {
    let release;
    const gate = new Promise((resolve) => (release = resolve));
    let received = 0;
    const { protocol, log } = connect(loop, async (request) => {
      await gate;
      for await (const chunk of request.body) received += chunk.length;
      return new Response(`read ${received}`);
    });
    const chunk = new Uint8Array(16 * 1024).fill(120);
    const total = 16 * chunk.length;
    protocol.dataReceived(new TextEncoder().encode(`POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ${total}\r\n\r\n`));
    let sent = 0;
    // The client sends while the transport reads; it stops when reading pauses.
    while (log.reading && sent < total) {
      protocol.dataReceived(chunk.slice());
      sent += chunk.length;
    }
    assert.not.ok(log.reading, 'reading paused');
    assert.ok(sent >= BODY_HIGH_WATER_BYTES && sent < total, `paused after ${sent} bytes`);
    release();
    await until(loop, () => log.reading);
    while (sent < total) {
      await until(loop, () => log.reading);
      protocol.dataReceived(chunk.slice());
      sent += chunk.length;
    }
    await until(loop, () => log.written.length > 0);
    assert.match(log.written.join(''), new RegExp(`read ${total}$`));
  }),
);

bp('bodyTimeoutMs does not run while the handler is not reading', () =>
  onLoop('virtual', async (loop) => {
    const { protocol, log } = connect(
      loop,
      async (request) => {
        await loop.sleep(500);
        return new Response(`read ${(await request.bytes()).length}`);
      },
      { bodyTimeoutMs: 50 },
    );
    const chunk = new Uint8Array(16 * 1024).fill(120);
    const total = 8 * chunk.length;
    protocol.dataReceived(new TextEncoder().encode(`POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ${total}\r\n\r\n`));
    let sent = 0;
    while (log.reading && sent < total) {
      protocol.dataReceived(chunk.slice());
      sent += chunk.length;
    }
    assert.not.ok(log.reading, 'reading paused');
    while (sent < total) {
      await until(loop, () => log.reading);
      protocol.dataReceived(chunk.slice());
      sent += chunk.length;
    }
    await until(loop, () => log.written.length > 0);
    assert.match(log.written.join(''), new RegExp(`^HTTP/1.1 200 .*read ${total}$`, 's'));
  }),
);

bp('a client that does not read: the response body is not pulled while writing is paused', () =>
  onLoop('virtual', async (loop) => {
    let pulls = 0;
    const { protocol, log } = connect(
      loop,
      () =>
        new Response(
          new ReadableStream(
            {
              pull(controller) {
                pulls++;
                controller.enqueue(new Uint8Array(1024).fill(97));
                if (pulls === 50) controller.close();
              },
            },
            { highWaterMark: 0 },
          ),
        ),
    );
    protocol.dataReceived(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: t\r\n\r\n'));
    await until(loop, () => log.written.length >= 3);
    protocol.pauseWriting();
    const pausedAt = pulls;
    await loop.sleep(100);
    assert.ok(pulls <= pausedAt + 1, `pulled ${pulls - pausedAt} more while paused`);
    protocol.resumeWriting();
    await until(loop, () => log.written.at(-1) === '0\r\n\r\n');
    assert.is(pulls, 50);
    const body = log.written
      .slice(1)
      .join('')
      .replace(/(^|\r\n)[0-9a-f]+\r\n/g, '$1')
      .replace(/\r\n/g, '');
    assert.is(body.length, 50 * 1024);
  }),
);

bp.run();
