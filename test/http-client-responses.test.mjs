// loop.fetch against servers that write raw bytes: how a response's body is
// delimited (RFC 9112 section 6.3), interim responses, responses the client
// must refuse, and a request retried when its reused connection was stale.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createHttpClient } from '../ts-host/dist/index.js';
import { onLoop } from './helpers.mjs';

/**
 * A server whose `n`th connection (from 0) runs `script(conn, n, readHead)`;
 * `readHead()` reads one request head and returns it as text. Runs
 * `fn(url, connections)` and closes the server.
 */
async function withRaw(loop, script, fn) {
  let count = 0;
  const server = await loop.createServer(
    async (conn) => {
      const n = count++;
      const readHead = async () => new TextDecoder().decode(await conn.readUntil('\r\n\r\n'));
      await script(conn, n, readHead);
    },
    { port: 0 },
  );
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`, () => count);
  } finally {
    server.abortClients();
    await server.close();
  }
}

/** Answers every request on a connection with `reply(head)` until the client leaves. */
const answering = (reply) => async (conn, n, readHead) => {
  for (;;) {
    const head = await readHead().catch(() => null);
    if (head === null) return;
    const out = reply(head, n);
    for (const part of [].concat(out)) await conn.write(part);
    if (out.close) return;
  }
};

const reason = (promise) =>
  promise.then(
    () => null,
    (error) => error,
  );

for (const backend of ['virtual', 'selector']) {
  const raw = suite(`loop.fetch reads responses on '${backend}'`);

  raw('a body delimited by the end of the connection; that connection is not reused', () =>
    onLoop(backend, (loop) =>
      withRaw(
        loop,
        async (conn, n, readHead) => {
          await readHead();
          await conn.write(`HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end ${n}`);
        },
        async (url, connections) => {
          assert.is(await (await loop.fetch(url)).text(), 'until the end 0');
          assert.is(await (await loop.fetch(url)).text(), 'until the end 1');
          assert.is(connections(), 2);
        },
      ),
    ),
  );

  raw('HEAD, 204 and 304 have no body whatever their fields say; the connection carries on', () =>
    onLoop(backend, (loop) =>
      withRaw(
        loop,
        answering((head) => {
          if (head.startsWith('HEAD')) return 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n';
          if (head.includes('/204')) return 'HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n';
          if (head.includes('/304')) return 'HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n';
          return 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody';
        }),
        async (url, connections) => {
          const head = await loop.fetch(url, { method: 'HEAD' });
          assert.equal([head.status, head.headers.get('content-length'), head.body], [200, '5', null]);
          const noContent = await loop.fetch(`${url}/204`);
          assert.equal([noContent.status, await noContent.text()], [204, '']);
          const notModified = await loop.fetch(`${url}/304`);
          assert.equal([notModified.status, await notModified.text()], [304, '']);
          assert.is(await (await loop.fetch(url)).text(), 'body');
          assert.is(connections(), 1, 'one connection for all four');
        },
      ),
    ),
  );

  raw('interim responses are skipped; a chunked body with extensions and trailers, a byte at a time', () =>
    onLoop(backend, (loop) =>
      withRaw(
        loop,
        async (conn, _n, readHead) => {
          await readHead();
          const text =
            'HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-caf: caf\xe9\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nx-trailer: t\r\n\r\n';
          const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
          for (const byte of bytes) await conn.write(Uint8Array.of(byte));
          await readHead();
        },
        async (url) => {
          const response = await loop.fetch(url);
          assert.is(response.status, 200);
          assert.is(response.headers.get('x-caf'), 'caf\xe9', 'Latin-1 field values');
          assert.is(await response.text(), 'hello!');
        },
      ),
    ),
  );

  raw('responses the client refuses, each a TypeError saying why', () =>
    onLoop(backend, async (loop) => {
      const cases = {
        'both Content-Length and Transfer-Encoding':
          'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n',
        'a bad Content-Length': 'HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabc',
        'a transfer coding other than chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n',
        'a bad status line': 'HTTP/1.1 2000 OK\r\n\r\n',
        'a version other than HTTP/1.0 and HTTP/1.1': 'HTTP/2.0 200 OK\r\n\r\n',
        'status 600': 'HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n',
        '101 Switching Protocols': 'HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n',
        'a bad header field name': 'HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n',
        'response head over maxHeaderBytes': `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
        'without a response': '',
      };
      const texts = Object.values(cases);
      await withRaw(
        loop,
        async (conn, n, readHead) => {
          await readHead();
          if (texts[n] !== '') await conn.write(texts[n]);
        },
        async (url) => {
          for (const why of Object.keys(cases)) {
            const error = await reason(loop.fetch(url));
            assert.instance(error, TypeError, why);
            assert.match(
              error.message,
              why === 'status 600' ? /status 600, which a Response cannot carry/ : why,
              `${why}: ${error.message}`,
            );
          }
        },
      );
    }),
  );

  raw('a body cut short fails its reader', () =>
    onLoop(backend, (loop) =>
      withRaw(
        loop,
        async (conn, _n, readHead) => {
          await readHead();
          await conn.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
        },
        async (url) => {
          const response = await loop.fetch(url);
          const error = await reason(response.text());
          assert.instance(error, TypeError);
          assert.match(
            error.message,
            /closed the connection in the middle of a response body|closed before the response was complete/,
          );
        },
      ),
    ),
  );

  raw('a reused connection the server closed as the request went out: sent again on a new one (idempotent only)', () =>
    onLoop(backend, async (loop) => {
      const http = createHttpClient(loop);
      const seen = [];
      await withRaw(
        loop,
        async (conn, n, readHead) => {
          for (let i = 0; ; i++) {
            const head = await readHead().catch(() => null);
            if (head === null) return;
            seen.push(`${n}: ${head.slice(0, head.indexOf(' /'))}`);
            // The first connection answers once, then closes on the next request without a word.
            if (n === 0 && i === 1) return;
            await conn.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nc${n}`);
          }
        },
        async (url) => {
          assert.is(await (await http.fetch(url)).text(), 'c0');
          assert.is(await (await http.fetch(url)).text(), 'c1', 'the GET went again, on a new connection');
          assert.equal(seen, ['0: GET', '0: GET', '1: GET']);
        },
      );
      seen.length = 0;
      await withRaw(
        loop,
        async (conn, n, readHead) => {
          for (let i = 0; ; i++) {
            const head = await readHead().catch(() => null);
            if (head === null) return;
            seen.push(`${n}: ${head.slice(0, head.indexOf(' /'))}`);
            if (n === 0 && i === 1) return;
            if (head.startsWith('POST')) await conn.readExactly(1);
            await conn.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nc${n}`);
          }
        },
        async (url) => {
          assert.is(await (await http.fetch(url)).text(), 'c0');
          const error = await reason(http.fetch(url, { method: 'POST', body: 'x' }));
          assert.instance(error, TypeError);
          assert.match(error.message, /closed the connection without a response/);
          assert.equal(seen, ['0: GET', '0: POST'], 'a POST is not sent twice');
        },
      );
      await http.close();
    }),
  );

  raw.run();
}
