// serve(): keep-alive, pipelining, HTTP/1.0, HEAD, 100-continue, streaming,
// handler errors, timeouts, graceful close and limits, on every backend.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { serve } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { echoHandler, exchange, parseResponses, withServer } from './http-helpers.mjs';

const GET = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;
const text = (s) => new TextEncoder().encode(s);

/** Reads from `conn` until `done(text)` or the end of the stream; returns the text and whether it ended. */
async function readUntil(conn, done) {
  let all = '';
  for (;;) {
    if (done(all)) return { text: all, ended: false };
    const chunk = await conn.read().catch(() => null);
    if (chunk === null) return { text: all, ended: true };
    all += new TextDecoder().decode(chunk);
  }
}

const responsesIn = (n) => (t) => parseResponses(t).responses.length >= n;

for (const backend of IO_BACKENDS) {
  const http = suite(`serve() on '${backendLabel(backend)}'`);

  http('keep-alive: two requests on one connection, a Date on each', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: (r) => new Response(`you asked for ${new URL(r.url).pathname}`) }, async (server) => {
        const conn = await loop.createConnection({ port: server.address().port });
        await conn.write(GET('/one'));
        const first = await readUntil(conn, responsesIn(1));
        await conn.write(GET('/two'));
        const both = await readUntil(conn, (t) => parseResponses(first.text + t).responses.length >= 2);
        conn.close();
        const { responses } = parseResponses(first.text + both.text);
        assert.equal(
          responses.map((r) => r.body),
          ['you asked for /one', 'you asked for /two'],
        );
        assert.ok(!both.ended, 'the connection stayed open');
        for (const r of responses) {
          assert.is(r.headers['content-length'], String(r.body.length));
          assert.ok(!Number.isNaN(Date.parse(r.headers.date)), 'a Date field');
          assert.is(r.headers.connection, undefined);
        }
      }),
    ),
  );

  http('large bodies arrive byte-exact: a 200 KiB body of known length, 100 KiB chunks of a streamed one', () =>
    onLoop(backend, (loop) => {
      // Past the size up to which the server joins a body with its head
      // (or a chunk with its size line) into one write: written apart.
      const pattern = (n, seed) => Uint8Array.from({ length: n }, (_, i) => 97 + ((i * 7 + seed) % 26));
      const known = pattern(200 * 1024, 1);
      const chunks = [pattern(100 * 1024, 2), pattern(100 * 1024 + 3, 3), pattern(5, 4)];
      const fetch = (r) => {
        if (new URL(r.url).pathname === '/known') return new Response(known);
        let i = 0;
        return new Response(
          new ReadableStream({
            pull(controller) {
              if (i < chunks.length) controller.enqueue(chunks[i++]);
              else controller.close();
            },
          }),
        );
      };
      return withServer(loop, { fetch }, async (server) => {
        const base = `http://127.0.0.1:${server.address().port}`;
        const first = await loop.fetch(`${base}/known`);
        assert.is(first.headers.get('content-length'), String(known.length));
        assert.equal(new Uint8Array(await first.arrayBuffer()), known);
        const second = await loop.fetch(`${base}/streamed`);
        assert.is(second.headers.get('transfer-encoding'), 'chunked');
        const expected = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          expected.set(c, at);
          at += c.length;
        }
        assert.equal(new Uint8Array(await second.arrayBuffer()), expected);
      });
    }),
  );

  http('nothing left behind: many connections and requests, then close() leaves no watcher, timer or completion', () =>
    onLoop(backend, async (loop) => {
      const before = loop.stats();
      const server = await serve(loop, { port: 0, fetch: async (r) => new Response(await r.text()) });
      const clients = Array.from({ length: 20 }, (_, i) =>
        exchange(
          loop,
          server.address(),
          [
            GET('/a'),
            `POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n${String(i).padStart(2, '0')}`,
            GET('/c'),
          ],
          { count: 3 },
        ),
      );
      const results = await Promise.all(clients);
      for (const [i, { responses }] of results.entries())
        assert.equal(
          responses.map((r) => r.body),
          ['', String(i).padStart(2, '0'), ''],
        );
      await server.close();
      const after = loop.stats();
      assert.is(server.connections, 0);
      assert.is(after.watchers, before.watchers, 'watchers');
      assert.is(after.completionsPending, before.completionsPending, 'completions');
      assert.is(after.timersPending, before.timersPending, 'timers');
    }),
  );

  http('pipelining: responses in request order, whatever order the handlers finish in', () =>
    onLoop(backend, (loop) => {
      const delays = { '/slow': 30, '/medium': 10, '/fast': 0 };
      return withServer(
        loop,
        {
          fetch: async (r) => {
            const path = new URL(r.url).pathname;
            await loop.sleep(delays[path]);
            return new Response(path);
          },
        },
        async (server) => {
          const { responses } = await exchange(loop, server.address(), GET('/slow') + GET('/medium') + GET('/fast'), {
            count: 3,
          });
          assert.equal(
            responses.map((r) => r.body),
            ['/slow', '/medium', '/fast'],
          );
        },
      );
    }),
  );

  http('Connection: close is answered with connection: close, then the server closes', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: () => new Response('bye') }, async (server) => {
        const { responses, closed } = await exchange(loop, server.address(), GET('/', 'Connection: close\r\n'));
        assert.is(responses[0].body, 'bye');
        assert.is(responses[0].headers.connection, 'close');
        assert.ok(closed);
      }),
    ),
  );

  http('HTTP/1.0: closes unless keep-alive is asked for; a stream body ends with the connection', () =>
    onLoop(backend, (loop) =>
      withServer(
        loop,
        {
          fetch: (r) =>
            new URL(r.url).pathname === '/stream'
              ? new Response(
                  new ReadableStream({
                    pull(c) {
                      c.enqueue(text('a'));
                      c.enqueue(text('b'));
                      c.close();
                    },
                  }),
                )
              : new Response('ten'),
        },
        async (server) => {
          const plain = await exchange(loop, server.address(), 'GET / HTTP/1.0\r\n\r\n');
          assert.is(plain.responses[0].version, 'HTTP/1.0');
          assert.ok(plain.closed);
          const kept = await exchange(
            loop,
            server.address(),
            'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
            { count: 2 },
          );
          assert.equal(
            kept.responses.map((r) => r.headers.connection),
            ['keep-alive', 'keep-alive'],
          );
          const streamed = await exchange(
            loop,
            server.address(),
            'GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
          );
          assert.ok(streamed.closed);
          assert.is(streamed.responses[0].headers['transfer-encoding'], undefined);
          assert.is(streamed.responses[0].body, 'ab');
        },
      ),
    ),
  );

  http('HEAD: the fields of a GET, no body', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: () => new Response('twelve bytes') }, async (server) => {
        const raw = `HEAD / HTTP/1.1\r\nHost: a\r\n\r\n${GET('/after')}`;
        const { responses } = await exchange(loop, server.address(), raw, { count: 2, headRequests: [true, false] });
        assert.is(responses[0].headers['content-length'], '12');
        assert.is(responses[0].body, '');
        assert.is(responses[1].body, 'twelve bytes', 'the next response follows directly');
      }),
    ),
  );

  http('a streamed body is chunked; one that fits in a chunk gets a Content-Length', () =>
    onLoop(backend, (loop) =>
      withServer(
        loop,
        {
          fetch: (r) => {
            const parts = new URL(r.url).pathname === '/one' ? ['only'] : ['a', 'bc', 'def'];
            return new Response(
              new ReadableStream({
                pull(c) {
                  for (const p of parts) c.enqueue(text(p));
                  c.close();
                },
              }),
            );
          },
        },
        async (server) => {
          const { responses } = await exchange(loop, server.address(), GET('/many') + GET('/one'), { count: 2 });
          assert.is(responses[0].headers['transfer-encoding'], 'chunked');
          assert.is(responses[0].body, 'abcdef');
          assert.is(responses[1].headers['content-length'], '4');
          assert.is(responses[1].body, 'only');
        },
      ),
    ),
  );

  http('Expect: 100-continue: 100 when the handler reads the body, then the response', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: echoHandler }, async (server) => {
        const conn = await loop.createConnection({ port: server.address().port });
        await conn.write('POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
        const interim = await readUntil(conn, (t) => t.includes('\r\n\r\n'));
        assert.match(interim.text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
        await conn.write('hello');
        const rest = await readUntil(conn, responsesIn(1));
        conn.close();
        const [response] = parseResponses(rest.text).responses;
        assert.is(JSON.parse(response.body).body, 'hello');
      }),
    ),
  );

  http('a handler that throws, rejects or returns no Response: a 500 for that request only, reported', () =>
    onLoop(backend, async (loop) => {
      const reported = [];
      loop.setExceptionHandler((_, context) => reported.push(context.message));
      const fetch = (r) => {
        const path = new URL(r.url).pathname;
        if (path === '/throw') throw new Error('thrown');
        if (path === '/reject') return Promise.reject(new Error('rejected'));
        if (path === '/nothing') return 'not a response';
        return new Response('fine');
      };
      await withServer(loop, { fetch }, async (server) => {
        const raw = GET('/throw') + GET('/reject') + GET('/nothing') + GET('/ok');
        const { responses } = await exchange(loop, server.address(), raw, { count: 4 });
        assert.equal(
          responses.map((r) => r.status),
          [500, 500, 500, 200],
        );
        assert.is(responses[3].body, 'fine');
      });
      assert.is(reported.length, 3);
      assert.ok(
        reported.every((m) => m.startsWith('serve: the fetch handler')),
        reported.join('; '),
      );
    }),
  );

  http('a response body that fails after its head: the connection closes, the error is reported', () =>
    onLoop(backend, async (loop) => {
      const reported = [];
      loop.setExceptionHandler((_, context) => reported.push(context.message));
      let pulls = 0;
      const failing = () =>
        new Response(
          new ReadableStream({
            pull(controller) {
              if (pulls++ === 0) {
                controller.enqueue(text('a'));
                controller.enqueue(text('b'));
              } else {
                controller.error(new Error('broken'));
              }
            },
          }),
        );
      await withServer(loop, { fetch: failing }, async (server) => {
        const { text: raw, closed } = await exchange(loop, server.address(), GET());
        assert.ok(closed);
        assert.match(raw, /transfer-encoding: chunked/);
        assert.not.ok(raw.endsWith('0\r\n\r\n'), 'no last chunk: the client sees the body cut');
      });
      assert.equal(reported, ['serve: the response body failed; the connection was closed']);
    }),
  );

  http('requestTimeoutMs: a head that does not arrive in time gets 408, then the connection closes', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: echoHandler, requestTimeoutMs: 50 }, async (server) => {
        const { responses, closed } = await exchange(loop, server.address(), 'GET / HTTP/1.1\r\nHost: a\r\n');
        assert.is(responses[0].status, 408);
        assert.ok(closed);
      }),
    ),
  );

  http(
    'bodyTimeoutMs: a body that stops arriving while the handler reads it gets 408, then the connection closes',
    () =>
      onLoop(backend, (loop) =>
        withServer(loop, { fetch: echoHandler, bodyTimeoutMs: 50 }, async (server) => {
          const { responses, closed } = await exchange(
            loop,
            server.address(),
            'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf',
          );
          assert.is(responses[0].status, 408);
          assert.match(responses[0].body, /bodyTimeoutMs/);
          assert.ok(closed);
        }),
      ),
  );

  http('keepAliveTimeoutMs: an idle keep-alive connection is closed', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: () => new Response('x'), keepAliveTimeoutMs: 40 }, async (server) => {
        const conn = await loop.createConnection({ port: server.address().port });
        await conn.write(GET());
        const { text: t, ended } = await readUntil(conn, () => false);
        conn.close();
        assert.ok(ended, 'the server closed the idle connection');
        assert.is(parseResponses(t).responses.length, 1);
        assert.is(server.connections, 0);
      }),
    ),
  );

  http('close(): requests in flight finish (with connection: close), idle connections close, then it resolves', () =>
    onLoop(backend, async (loop) => {
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      let started;
      const inHandler = new Promise((resolve) => (started = resolve));
      const server = await serve(loop, {
        port: 0,
        fetch: async (r) => {
          if (new URL(r.url).pathname === '/slow') {
            started();
            await gate;
          }
          return new Response('done');
        },
      });
      const idle = await loop.createConnection({ port: server.address().port });
      await idle.write(GET('/quick'));
      await readUntil(idle, responsesIn(1));
      const busy = exchange(loop, server.address(), GET('/slow'));
      await inHandler;
      const closing = server.close();
      const idleEnd = await readUntil(idle, () => false);
      assert.ok(idleEnd.ended, 'the idle connection was closed');
      idle.close();
      release();
      const { responses, closed } = await busy;
      assert.is(responses[0].body, 'done');
      assert.is(responses[0].headers.connection, 'close');
      assert.ok(closed);
      await closing;
      assert.is(server.connections, 0);
    }),
  );

  http('close({ timeoutMs }): connections still busy then are aborted, their requests signalled', () =>
    onLoop(backend, async (loop) => {
      let entered;
      const inHandler = new Promise((resolve) => (entered = resolve));
      let reason;
      const server = await serve(loop, {
        port: 0,
        fetch: (r) =>
          new Promise(() => {
            r.signal.addEventListener('abort', () => (reason = r.signal.reason));
            entered();
          }),
      });
      const busy = exchange(loop, server.address(), GET('/forever'));
      await inHandler;
      await server.close({ timeoutMs: 20 });
      const { responses, closed } = await busy;
      assert.is(responses.length, 0);
      assert.ok(closed);
      assert.instance(reason, Error);
      assert.is(server.connections, 0);
      const bad = await server.close({ timeoutMs: -1 }).then(
        () => null,
        (e) => e,
      );
      assert.instance(bad, RangeError);
    }),
  );

  http('signal: aborting it closes the server', () =>
    onLoop(backend, async (loop) => {
      const controller = new AbortController();
      const server = await serve(loop, { port: 0, fetch: () => new Response('x'), signal: controller.signal });
      const conn = await loop.createConnection({ port: server.address().port });
      await conn.write(GET());
      await readUntil(conn, responsesIn(1));
      controller.abort();
      const { ended } = await readUntil(conn, () => false);
      conn.close();
      assert.ok(ended);
      const refused = await loop.createConnection({ port: server.address().port }).then(
        (c) => {
          c.close();
          return false;
        },
        () => true,
      );
      assert.ok(refused, 'no longer accepting');
    }),
  );

  http("the request's signal aborts when the client goes away", () =>
    onLoop(backend, async (loop) => {
      let aborted;
      const sawAbort = new Promise((resolve) => (aborted = resolve));
      let entered;
      const inHandler = new Promise((resolve) => (entered = resolve));
      await withServer(
        loop,
        {
          fetch: (r) =>
            new Promise(() => {
              r.signal.addEventListener('abort', () => aborted(r.signal.reason));
              entered();
            }),
        },
        async (server) => {
          const conn = await loop.createConnection({ port: server.address().port });
          await conn.write(GET());
          await inHandler;
          conn.close();
          const reason = await sawAbort;
          assert.instance(reason, Error);
        },
      );
    }),
  );

  http('maxConnections: one connection too many gets 503', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: () => new Response('x'), maxConnections: 1 }, async (server) => {
        const first = await loop.createConnection({ port: server.address().port });
        await first.write(GET());
        await readUntil(first, responsesIn(1));
        const { responses, closed } = await exchange(loop, server.address(), GET());
        first.close();
        assert.is(responses[0].status, 503);
        assert.ok(closed);
      }),
    ),
  );

  http('the Request: a real one to the handler (instanceof, URL with the Host, headers, clone)', () =>
    onLoop(backend, (loop) =>
      withServer(
        loop,
        {
          fetch: async (r) => {
            const copy = r.clone();
            return Response.json({
              isRequest: r instanceof Request,
              url: r.url,
              method: r.method,
              agent: r.headers.get('user-agent'),
              cloneUrl: copy.url,
              body: await copy.text(),
            });
          },
        },
        async (server) => {
          const raw =
            'PUT /a/./b?x=1 HTTP/1.1\r\nHost: Example.test:8080\r\nUser-Agent: t\r\nContent-Length: 2\r\n\r\nhi';
          const { responses } = await exchange(loop, server.address(), raw, { count: 1 });
          assert.equal(JSON.parse(responses[0].body), {
            isRequest: true,
            url: 'http://example.test:8080/a/b?x=1',
            method: 'PUT',
            agent: 't',
            cloneUrl: 'http://example.test:8080/a/b?x=1',
            body: 'hi',
          });
        },
      ),
    ),
  );

  http("request.url follows each request's Host and target, alike or not", () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: (r) => new Response(r.url) }, async (server) => {
        // Hosts of one length that differ, one differing only in case, one repeated, a default port.
        const hosts = ['a.test:81', 'b.test:81', 'B.test:81', 'a.test:81', 'a.test:80', 'a.test:81'];
        const targets = ['/', '/', '/', '/x', '/', '/'];
        const raw = hosts.map((h, i) => `GET ${targets[i]} HTTP/1.1\r\nHost: ${h}\r\n\r\n`).join('');
        const { responses } = await exchange(loop, server.address(), raw, { count: hosts.length });
        assert.equal(
          responses.map((r) => r.body),
          [
            'http://a.test:81/',
            'http://b.test:81/',
            'http://b.test:81/',
            'http://a.test:81/x',
            'http://a.test/',
            'http://a.test:81/',
          ],
        );
      }),
    ),
  );

  http.run();
}

const options = suite('serve() options');

options('unknown options, a missing fetch and bad limits are errors that name them', () =>
  onLoop('virtual', async (loop) => {
    const fetch = () => new Response('x');
    for (const [bad, pattern] of [
      [{ fetch, keepAliveTimeout: 1 }, /unknown option 'keepAliveTimeout' \(did you mean 'keepAliveTimeoutMs'\?\)/],
      [{}, /fetch must be a function/],
      [{ fetch, maxHeaderBytes: 2 ** 30 }, /maxHeaderBytes must be a whole number from 64 to 1048576/],
      [{ fetch, maxBodyBytes: -1 }, /maxBodyBytes/],
      [{ fetch, requestTimeoutMs: 0 }, /requestTimeoutMs/],
      [{ fetch, signal: {} }, /signal must be an AbortSignal/],
    ]) {
      const error = await serve(loop, bad).then(
        () => null,
        (e) => e,
      );
      assert.ok(
        error !== null && pattern.test(error.message),
        `${JSON.stringify(Object.keys(bad))}: ${error?.message}`,
      );
    }
  }),
);

options.run();
