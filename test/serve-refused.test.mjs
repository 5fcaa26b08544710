// The responses the HTTP server makes itself (400, 408, 413, 431, 503):
// serve()'s `onRefused` on every backend, then `wasmloop serve`'s access log
// of them end to end, as test/cli-serve.test.mjs (the command spawned,
// requests over raw sockets, the log read from stdout).
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { serve } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { echoHandler, exchange } from './http-helpers.mjs';
import { LIMIT_MS, withCommand } from './fixtures/command.mjs';

const APPS = './test/fixtures/serve-apps.mjs';
/** Requests each refused by a rule or a limit, the status they get, and the request line the server read (null: none). */
const RULES = [
  ['GARBAGE\r\n\r\n', 400, null],
  [
    'POST /big HTTP/1.0\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n',
    413,
    { method: 'POST', target: '/big', version: '1.0' },
  ],
  [`GET /h HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(17_000)}\r\n\r\n`, 431, null],
  // A chunked body that breaks its framing while the handler reads it.
  [
    'POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    400,
    { method: 'POST', target: '/echo?x=1', version: '1.1' },
  ],
];

for (const backend of IO_BACKENDS) {
  const refused = suite(`serve() onRefused: ${backendLabel(backend)}`);

  refused('each error response the server makes itself is reported once written, with the request line it read', () =>
    onLoop(backend, async (loop) => {
      const seen = [];
      const onRefused = (status, request, info) => seen.push({ status, request, local: info.localAddress.port });
      const server = await serve(loop, { port: 0, fetch: echoHandler, onRefused, maxConnections: 2 });
      // The 408's server of its own: on one with a short requestTimeoutMs, a
      // request that came late on a busy machine would get a 408 too.
      const hasty = await serve(loop, { port: 0, fetch: echoHandler, onRefused, requestTimeoutMs: 50 });
      const { port } = server.address();
      /** Until the connections before are gone, so that only the ones a step opens count against maxConnections. */
      const settled = async () => {
        while (server.connections > 0) await loop.sleep(1);
      };
      try {
        for (const [request, status, line] of RULES) {
          const { responses, closed } = await exchange(loop, server.address(), request);
          assert.is(responses[0]?.status, status, request.slice(0, 30));
          assert.ok(closed);
          assert.equal(seen.at(-1), { status, request: line, local: port });
        }
        // A head that does not arrive in time.
        const late = await exchange(loop, hasty.address(), 'GET / HTTP/1.1\r\nHo');
        assert.is(late.responses[0].status, 408);
        assert.equal(seen.at(-1), { status: 408, request: null, local: hasty.address().port });
        // One connection past maxConnections (2), while two stay open.
        await settled();
        const held = [];
        for (let i = 0; i < 2; i++) {
          const conn = await loop.createConnection({ port });
          await conn.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
          await conn.read();
          held.push(conn);
        }
        const past = await exchange(loop, server.address(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
        assert.is(past.responses[0].status, 503);
        assert.equal(seen.at(-1), { status: 503, request: null, local: port });
        for (const conn of held) conn.close();
        // One report each; the requests the handler answered are not reported.
        assert.equal(
          seen.map((s) => s.status),
          [400, 413, 431, 400, 408, 503],
        );
      } finally {
        await server.close();
        await hasty.close();
      }
    }),
  );

  refused('an onRefused that throws goes to the exception handler; the response went out', () =>
    onLoop(backend, async (loop) => {
      const errors = [];
      loop.setExceptionHandler((_loop, context) => errors.push(context.message));
      const server = await serve(loop, {
        port: 0,
        fetch: echoHandler,
        onRefused: () => {
          throw new Error('a broken hook');
        },
      });
      try {
        const { responses } = await exchange(loop, server.address(), 'GARBAGE\r\n\r\n');
        assert.is(responses[0].status, 400);
        assert.equal(errors, ['serve: onRefused threw']);
      } finally {
        await server.close();
      }
    }),
  );

  refused.run();
}

const bad = suite('serve() onRefused: bad input');
bad('onRefused must be a function', () =>
  onLoop('virtual', async (loop) => {
    const error = await serve(loop, { fetch: echoHandler, onRefused: 'log' }).catch((e) => e);
    assert.instance(error, TypeError);
    assert.match(error.message, /^serve: onRefused must be a function, got string "log"$/);
  }),
);
bad.run();

// ------------------------------------------------------------ the command

/** uvicorn's access log line; the request is `-` where no request line was read. */
const ACCESS = /^INFO: {5}127\.0\.0\.1:\d+ - "([^"]*)" (\d{3}) (.*)$/gm;

async function servingPort(server) {
  return Number((await server.waitFor(/serving on http:\/\/127\.0\.0\.1:(\d+) /, 'err'))[1]);
}

/** Sends `text` on a connection of its own; resolves with what came back once the server closed it. */
function refusedExchange(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(
      () => reject(new Error(`not closed within ${LIMIT_MS} ms: ${JSON.stringify(got)}`)),
      LIMIT_MS,
    );
    socket.setEncoding('latin1');
    socket.on('data', (d) => (got += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.write(text);
  });
}

/** A keep-alive connection with one request answered, left open. */
function heldOpen(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setEncoding('latin1');
    socket.once('data', () => resolve(socket));
    socket.on('error', reject);
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  });
}

/** The access log's lines in `out`: [request, status, reason]. */
const logged = (out) => [...out.matchAll(ACCESS)].map((m) => [m[1], m[2], m[3]]);

const cli = suite(
  'wasmloop serve: the access log of the responses the server makes itself',
  {},
  { timeLimitMs: 120_000 },
);

cli('400, 408, 413, 431 and the 503 of --limit-concurrency are logged as uvicorn logs a response', async () => {
  const args = ['serve', APPS, '--port', '0', '--limit-concurrency', '2', '--timeout-request-header', '1'];
  await withCommand(args, async (server) => {
    const port = await servingPort(server);
    for (const [request, status] of RULES) {
      assert.match(await refusedExchange(port, request), new RegExp(`^HTTP/1\\.[01] ${status} `));
    }
    assert.match(await refusedExchange(port, 'GET / HTTP/1.1\r\nhos'), /^HTTP\/1\.1 408 /);
    const held = [await heldOpen(port), await heldOpen(port)];
    assert.match(await refusedExchange(port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'), /^HTTP\/1\.1 503 /);
    for (const socket of held) socket.destroy();
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    // The handler of the broken chunked body failed (its body read did), and its 500 never went out: not logged.
    assert.equal(logged(server.output().out), [
      ['-', '400', 'Bad Request'],
      ['POST /big HTTP/1.0', '413', 'Content Too Large'],
      ['-', '431', 'Request Header Fields Too Large'],
      ['POST /echo?x=1 HTTP/1.1', '400', 'Bad Request'],
      ['-', '408', 'Request Timeout'],
      ['GET / HTTP/1.1', '200', 'OK'],
      ['GET / HTTP/1.1', '200', 'OK'],
      ['-', '503', 'Service Unavailable'],
    ]);
    await server.noneLeft();
  });
});

cli("--interface node: the 503 of --limit-concurrency is logged too (node:http's own errors are Node's)", async () => {
  const args = ['serve', `${APPS}:listener`, '--interface', 'node', '--port', '0', '--limit-concurrency', '1'];
  await withCommand(args, async (server) => {
    const port = await servingPort(server);
    const held = await heldOpen(port);
    assert.match(await refusedExchange(port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'), /^HTTP\/1\.1 503 /);
    held.destroy();
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    assert.equal(logged(server.output().out), [
      ['GET / HTTP/1.1', '200', 'OK'],
      ['-', '503', 'Service Unavailable'],
    ]);
    await server.noneLeft();
  });
});

cli.run();
