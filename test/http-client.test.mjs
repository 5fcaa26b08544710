// loop.fetch against serve() on every backend: keep-alive reuse, the
// per-origin limit, idle connections, request and response bodies with
// backpressure, aborts, redirects, and nothing left behind.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createHttpClient, createLoop, serve } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { echoHandler, withServer } from './http-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const encoder = new TextEncoder();
const base = (server) => `http://127.0.0.1:${server.address().port}`;

/** A stream of `total` bytes in `size`-byte chunks, counting what was pulled from it. */
function counted(total, size) {
  const state = { pulled: 0 };
  state.stream = new ReadableStream(
    {
      pull(controller) {
        if (state.pulled >= total) {
          controller.close();
          return;
        }
        const n = Math.min(size, total - state.pulled);
        controller.enqueue(new Uint8Array(n).fill((state.pulled / size) % 251));
        state.pulled += n;
      },
    },
    { highWaterMark: 0 },
  );
  return state;
}

for (const backend of IO_BACKENDS) {
  const client = suite(`loop.fetch on '${backendLabel(backend)}'`);

  client('GET and POST; keep-alive: sequential requests share one connection', () =>
    onLoop(backend, (loop) => {
      const peers = new Set();
      return withServer(
        loop,
        {
          fetch: (r, info) => {
            peers.add(info.remoteAddress.port);
            return echoHandler(r);
          },
        },
        async (server) => {
          const got = await (await loop.fetch(`${base(server)}/a?b=1`, { headers: { 'x-one': '1' } })).json();
          assert.is(got.method, 'GET');
          assert.is(got.url, `${base(server)}/a?b=1`);
          assert.is(got.headers['x-one'], '1');
          assert.is(got.headers.host, `127.0.0.1:${server.address().port}`);
          const posted = await loop.fetch(`${base(server)}/b`, { method: 'post', body: 'héllo' });
          assert.is(posted.status, 200);
          assert.is(posted.headers.get('content-type'), 'application/json');
          const echoed = await posted.json();
          assert.is(echoed.method, 'POST');
          assert.is(echoed.body, 'héllo');
          assert.is(echoed.headers['content-length'], String(encoder.encode('héllo').length));
          assert.is(echoed.headers['content-type'], 'text/plain;charset=UTF-8');
          for (let i = 0; i < 5; i++) await (await loop.fetch(`${base(server)}/c`)).text();
          assert.is(peers.size, 1, 'one connection carried every request');
          assert.is(server.connections, 1);
        },
      );
    }),
  );

  client('the per-origin limit: requests beyond it wait for a connection', () =>
    onLoop(backend, async (loop) => {
      const http = createHttpClient(loop, { maxConnectionsPerOrigin: 2 });
      let active = 0;
      let most = 0;
      const peers = new Set();
      await withServer(
        loop,
        {
          fetch: async (r, info) => {
            peers.add(info.remoteAddress.port);
            most = Math.max(most, ++active);
            await loop.sleep(5);
            active--;
            return new Response(new URL(r.url).pathname);
          },
        },
        async (server) => {
          const bodies = await Promise.all(
            Array.from({ length: 7 }, (_, i) => http.fetch(`${base(server)}/${i}`).then((r) => r.text())),
          );
          assert.equal(
            bodies,
            Array.from({ length: 7 }, (_, i) => `/${i}`),
          );
          assert.is(most, 2, 'never more than two at once');
          assert.is(peers.size, 2, 'two connections, reused');
          assert.is(http.connections, 2);
          await http.close();
          assert.is(http.connections, 0);
        },
      );
    }),
  );

  client('a response body streams with backpressure: an application that stops reading stops the server', () =>
    onLoop(backend, (loop) => {
      const total = 64 * 1024 * 1024;
      const source = counted(total, 64 * 1024);
      return withServer(loop, { fetch: () => new Response(source.stream) }, async (server) => {
        const response = await loop.fetch(`${base(server)}/big`);
        const reader = response.body.getReader();
        let read = 0;
        while (read < 1024 * 1024) read += (await reader.read()).value.length;
        // The client no longer reads: the server fills the buffers on the way and stops.
        await loop.sleep(200);
        const produced = source.pulled;
        assert.ok(produced < total / 4, `the server produced ${produced} of ${total} bytes`);
        // Reading again drains the rest, byte for byte.
        for (;;) {
          const next = await reader.read();
          if (next.done) break;
          read += next.value.length;
        }
        assert.is(read, total);
      });
    }),
  );

  client('a stream request body is sent chunked, with backpressure, or with the length it declares', () =>
    onLoop(backend, (loop) => {
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      return withServer(
        loop,
        {
          fetch: async (r) => {
            if (new URL(r.url).pathname === '/slow') await gate;
            let bytes = 0;
            for await (const chunk of r.body) bytes += chunk.length;
            return Response.json({
              bytes,
              framing: r.headers.get('transfer-encoding') ?? `length ${r.headers.get('content-length')}`,
            });
          },
        },
        async (server) => {
          const total = 12 * 1024 * 1024; // under serve()'s maxBodyBytes
          const source = counted(total, 64 * 1024);
          const pending = loop.fetch(`${base(server)}/slow`, { method: 'PUT', body: source.stream, duplex: 'half' });
          await loop.sleep(200);
          assert.ok(
            source.pulled < total * 0.75,
            `the client read ${source.pulled} of ${total} bytes of a body nobody took`,
          );
          release();
          assert.equal(await (await pending).json(), { bytes: total, framing: 'chunked' });
          const sized = counted(100_000, 30_000);
          const response = await loop.fetch(`${base(server)}/sized`, {
            method: 'POST',
            body: sized.stream,
            headers: { 'content-length': '100000' },
            duplex: 'half',
          });
          assert.equal(await response.json(), { bytes: 100_000, framing: 'length 100000' });
        },
      );
    }),
  );

  client('a signal aborts the request, the server sees it go, and the body it was reading', () =>
    onLoop(backend, (loop) => {
      let serverSignal;
      let sawAbort;
      let sawRequest;
      const aborted = new Promise((resolve) => (sawAbort = resolve));
      const requested = new Promise((resolve) => (sawRequest = resolve));
      return withServer(
        loop,
        {
          fetch: async (r) => {
            const path = new URL(r.url).pathname;
            if (path === '/stuck') {
              serverSignal = r.signal;
              r.signal.addEventListener('abort', sawAbort);
              sawRequest();
              return new Promise(() => {});
            }
            // Two chunks and no end (the server waits for a second chunk before it sends the head).
            return new Response(
              new ReadableStream({
                start(c) {
                  c.enqueue(encoder.encode('first'));
                  c.enqueue(encoder.encode('second'));
                },
              }),
            );
          },
        },
        async (server) => {
          const controller = new AbortController();
          const pending = loop.fetch(`${base(server)}/stuck`, { signal: controller.signal });
          // Aborted once the handler has the request: earlier, the server never sees one to abort.
          await requested;
          controller.abort();
          const error = await pending.catch((e) => e);
          assert.is(error.name, 'AbortError');
          await aborted;
          assert.ok(serverSignal.aborted, "the handler's signal aborted: the connection closed");
          const reading = new AbortController();
          const response = await loop.fetch(`${base(server)}/body`, { signal: reading.signal });
          const reader = response.body.getReader();
          assert.match(new TextDecoder().decode((await reader.read()).value), /^first/);
          reading.abort(new Error('enough'));
          const failed = await reader.read().catch((e) => e);
          assert.is(failed.message, 'enough');
          const early = new AbortController();
          early.abort();
          assert.is(
            (await loop.fetch(`${base(server)}/x`, { signal: early.signal }).catch((e) => e)).name,
            'AbortError',
          );
        },
      );
    }),
  );

  client('redirects: followed as fetch does, or returned, or an error', () =>
    onLoop(backend, (loop) =>
      withServer(
        loop,
        {
          fetch: async (r) => {
            const url = new URL(r.url);
            const to = url.searchParams.get('to');
            const status = Number(url.searchParams.get('status') ?? 302);
            if (to !== null) return new Response('moved', { status, headers: { location: to } });
            if (url.pathname === '/loop') return new Response(null, { status: 302, headers: { location: '/loop' } });
            return echoHandler(r);
          },
        },
        async (server) => {
          const followed = await loop.fetch(`${base(server)}/?to=/final%23frag&status=301`);
          assert.is(followed.redirected, true);
          assert.is(followed.url, `${base(server)}/final`, 'the final URL, without the fragment');
          assert.is((await followed.json()).method, 'GET');
          const posted = await loop.fetch(`${base(server)}/?to=/after&status=302`, { method: 'POST', body: 'x' });
          const afterPost = await posted.json();
          assert.equal([afterPost.method, afterPost.body, afterPost.headers['content-type']], ['GET', null, undefined]);
          const kept = await (
            await loop.fetch(`${base(server)}/?to=/kept&status=307`, { method: 'POST', body: 'kept' })
          ).json();
          assert.equal([kept.method, kept.body], ['POST', 'kept']);
          const seeOther = await (
            await loop.fetch(`${base(server)}/?to=/other&status=303`, { method: 'PUT', body: 'x' })
          ).json();
          assert.is(seeOther.method, 'GET');
          const manual = await loop.fetch(`${base(server)}/?to=/m`, { redirect: 'manual' });
          assert.equal(
            [manual.status, manual.headers.get('location'), manual.redirected, await manual.text()],
            [302, '/m', false, 'moved'],
          );
          const error = await loop.fetch(`${base(server)}/?to=/e`, { redirect: 'error' }).catch((e) => e);
          assert.instance(error, TypeError);
          assert.match(error.message, /redirect is 'error'/);
          const tooMany = await loop.fetch(`${base(server)}/loop`).catch((e) => e);
          assert.match(tooMany.message, /more than 20 redirects/);
          const stream = new ReadableStream({
            start(c) {
              c.enqueue(encoder.encode('s'));
              c.close();
            },
          });
          const once = await loop
            .fetch(`${base(server)}/?to=/s&status=307`, { method: 'POST', body: stream, duplex: 'half' })
            .catch((e) => e);
          assert.match(once.message, /cannot follow a 307 redirect with a stream body/);
          const other = `http://localhost:${server.address().port}/cross`;
          const cross = await (
            await loop.fetch(`${base(server)}/?to=${encodeURIComponent(other)}`, {
              headers: { authorization: 'secret', 'x-keep': 'k' },
            })
          ).json();
          assert.equal(
            [cross.headers.authorization, cross.headers['x-keep']],
            [undefined, 'k'],
            'credentials stay with their origin',
          );
        },
      ),
    ),
  );

  client("https: over the loop's TLS, the certificate checked against the URL's host", () =>
    onLoop(backend, async (loop) => {
      const certs = certificates();
      const server = await loop.createServer(
        async (conn) => {
          for (;;) {
            const head = await conn.readUntil('\r\n\r\n').catch(() => null);
            if (head === null) return;
            const body = `secure, ALPN ${conn.tls.alpnProtocol}`;
            await conn.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
          }
        },
        { port: 0, tls: { key: certs.server.key, cert: certs.server.cert, alpnProtocols: ['http/1.1'] } },
      );
      try {
        const https = createHttpClient(loop, { tls: { ca: certs.ca.cert } });
        const url = `https://localhost:${server.address().port}/`;
        assert.is(await (await https.fetch(url)).text(), 'secure, ALPN http/1.1');
        assert.is(await (await https.fetch(url)).text(), 'secure, ALPN http/1.1');
        assert.is(https.connections, 1, 'one TLS connection, kept alive');
        // The loop's own client trusts the host's roots, which never signed the test CA.
        const untrusted = await loop.fetch(url).catch((e) => e);
        assert.instance(untrusted, TypeError);
        assert.match(untrusted.message, /cannot connect to localhost:/);
        assert.is(untrusted.cause?.name, 'TlsError');
        await https.close();
      } finally {
        server.abortClients();
        await server.close();
      }
    }),
  );

  client('nothing left behind: after many fetches and closing, no watcher, timer or completion', () =>
    onLoop(backend, async (loop) => {
      const before = loop.stats();
      const server = await serve(loop, {
        port: 0,
        fetch: async (r) => new Response(r.body === null ? 'none' : await r.text()),
      });
      const http = createHttpClient(loop, { maxConnectionsPerOrigin: 3 });
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          http.fetch(`${base(server)}/`, i % 2 ? { method: 'POST', body: `n${i}` } : {}).then((r) => r.text()),
        ),
      );
      assert.equal(
        results,
        Array.from({ length: 30 }, (_, i) => (i % 2 ? `n${i}` : 'none')),
      );
      assert.is(http.idleConnections, 3);
      await http.close();
      await server.close();
      const after = loop.stats();
      assert.is(after.watchers, before.watchers, 'watchers');
      assert.is(after.completionsPending, before.completionsPending, 'completions');
      assert.is(after.timersPending, before.timersPending, 'timers');
    }),
  );

  client.run();
}

const edges = suite('loop.fetch: arguments and connections');

edges('bad input is a clear error naming the argument', () =>
  onLoop('virtual', async (loop) => {
    const reason = (p) =>
      p.then(
        () => null,
        (e) => e,
      );
    const url = 'http://127.0.0.1:1/';
    assert.match((await reason(loop.fetch('https://127.0.0.1:1/'))).message, /cannot connect to 127\.0\.0\.1:1/);
    assert.match((await reason(loop.fetch('/relative'))).message, /input must be an absolute URL/);
    assert.match(
      (await reason(loop.fetch(42))).message,
      /input must be a Request, a URL or a URL string, got number 42/,
    );
    assert.match(
      (await reason(loop.fetch(url, { methd: 'GET' }))).message,
      /unknown option 'methd' \(did you mean 'method'\?\)/,
    );
    assert.match((await reason(loop.fetch(url, { method: 'GE T' }))).message, /method must be an HTTP method token/);
    assert.match((await reason(loop.fetch(url, { method: 'CONNECT' }))).message, /method CONNECT is not allowed/);
    assert.match((await reason(loop.fetch(url, { body: 'x' }))).message, /a GET request cannot have a body/);
    assert.match(
      (await reason(loop.fetch(url, { method: 'POST', body: 42 }))).message,
      /body must be a string, .* got number 42/,
    );
    assert.match(
      (await reason(loop.fetch(url, { redirect: 'sometimes' }))).message,
      /redirect must be 'follow', 'manual' or 'error'/,
    );
    assert.match((await reason(loop.fetch(url, { signal: {} }))).message, /signal must be an AbortSignal/);
    assert.match((await reason(loop.fetch('http://u:p@127.0.0.1:1/'))).message, /credentials/);
    assert.match(
      (await reason(loop.fetch('ftp://127.0.0.1/'))).message,
      /only http: and https: URLs can be fetched, got a ftp: URL/,
    );
    const refused = await reason(loop.fetch(url));
    assert.instance(refused, TypeError);
    assert.match(refused.message, /cannot connect to 127\.0\.0\.1:1/);
    assert.throws(() => createHttpClient(loop, { maxConnections: 3 }), /unknown option 'maxConnections'/);
    assert.throws(
      () => createHttpClient(loop, { maxConnectionsPerOrigin: 0 }),
      /maxConnectionsPerOrigin must be a whole number from 1/,
    );
    assert.throws(() => createHttpClient(loop, { idleTimeoutMs: -1 }), /idleTimeoutMs must be a whole number/);
    assert.throws(
      () => createHttpClient(loop, { tls: { ALPNProtocols: ['h2'] } }),
      /createHttpClient: tls: unknown option 'ALPNProtocols' \(did you mean 'alpnProtocols'\?\)/,
    );
    assert.throws(() => createHttpClient(loop, { tls: 'yes' }), /tls must be an object/);
  }),
);

edges('idle connections close after idleTimeoutMs of loop time, and when the loop closes', async () => {
  const serverLoop = await createLoop({ backend: 'selector' });
  const server = await serverLoop.runUntilComplete(() =>
    serve(serverLoop, { port: 0, fetch: () => new Response('ok') }),
  );
  const serverRun = serverLoop.runForever();
  try {
    const loop = await createLoop({ backend: 'selector' });
    const http = createHttpClient(loop, { idleTimeoutMs: 50 });
    await loop.runUntilComplete(async () => {
      // Each connection goes idle after its request was sent: its timeout is due 50 ms after that at the earliest.
      const sent = loop.time();
      await Promise.all([1, 2, 3].map(async () => (await http.fetch(`${base(server)}/`)).text()));
      // Unless a busy machine let 50 ms pass meanwhile, no timeout has run yet.
      if (loop.time() < sent + 50) assert.is(http.idleConnections, 3);
      while (http.connections > 0) await loop.sleep(10);
      assert.ok(loop.time() - sent >= 50, 'not before the timeout');
      await (await loop.fetch(`${base(server)}/`)).text();
      await (await http.fetch(`${base(server)}/`)).text();
    });
    assert.is(http.connections, 1);
    await loop.close();
    // The loop's close closed the client's idle connections: the server sees them go.
    while (server.connections > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.is((await http.fetch(`${base(server)}/`).catch((e) => e)).name, 'LoopClosedError');
  } finally {
    serverLoop.stop();
    await serverRun;
    await serverLoop.runUntilComplete(() => server.close());
    await serverLoop.close();
  }
});

edges('closing the loop fails a pending fetch and a body being read with LoopClosedError', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  let pending;
  let reading;
  await loop.runUntilComplete(async () => {
    const server = await serve(loop, {
      port: 0,
      fetch: (r) =>
        new URL(r.url).pathname === '/never'
          ? new Promise(() => {})
          : new Response(
              new ReadableStream({
                start(c) {
                  c.enqueue(new Uint8Array(2));
                  c.enqueue(new Uint8Array(2));
                },
              }),
            ),
    });
    pending = loop.fetch(`${base(server)}/never`);
    pending.catch(() => undefined);
    const response = await loop.fetch(`${base(server)}/body`);
    reading = response.arrayBuffer();
    reading.catch(() => undefined);
    await loop.sleep(10);
  });
  await loop.close();
  assert.is((await pending.catch((e) => e)).name, 'LoopClosedError');
  assert.is((await reading.catch((e) => e)).name, 'LoopClosedError');
});

edges.run();
