// RFC 9112's rules, one raw request each, against a running server on every
// backend with a network: what status the server answers, and that it
// closes the connection after a request it refuses.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { echoHandler, exchange, withServer } from './http-helpers.mjs';

const LIMITS = { maxHeaderBytes: 1024, maxHeaders: 10, maxBodyBytes: 1000 };

/** [rule, raw request, expected status]: each refused, the connection closed after. */
const REFUSED = [
  [
    'Content-Length and Transfer-Encoding together',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    400,
  ],
  ['a Content-Length that is not digits', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc', 400],
  ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400],
  [
    'two Content-Lengths that differ',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    400,
  ],
  ['a list of Content-Lengths that differ', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd', 400],
  [
    'an unknown transfer coding',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    501,
  ],
  ['chunked not last', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n', 400],
  ['a transfer coding without chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', 400],
  [
    'chunked twice',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    400,
  ],
  ['Transfer-Encoding on HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['whitespace before a header colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400],
  ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 400],
  ['a bare CR in a field', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n', 400],
  ['a bare CR ending the request line', 'GET / HTTP/1.1\rHost: a\r\n\r\n', 400],
  ['a control character in a field value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n', 400],
  ['an invalid method', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['an invalid target', 'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['a target with a space', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['an invalid version', 'GET / HTTQ/1.1\r\nHost: a\r\n\r\n', 400],
  ['an unsupported version', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
  ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  ['a Host with a path in it', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400],
  ['CONNECT (not a proxy)', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 501],
  ['an expectation other than 100-continue', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n', 417],
  ['a head over maxHeaderBytes', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(2000)}\r\n\r\n`, 431],
  ['a head over maxHeaderBytes, never ending', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(2000)}`, 431],
  ['more fields than maxHeaders', `GET / HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(12)}\r\n`, 431],
  ['a Content-Length over maxBodyBytes', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n', 413],
  [
    'a chunked body over maxBodyBytes',
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n${'a'.repeat(1000)}\r\n1\r\nb\r\n0\r\n\r\n`,
    413,
  ],
  [
    'a chunk-size that is not hex',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n',
    400,
  ],
  ['an empty chunk-size', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n', 400],
  [
    'a bare LF in a chunk extension',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x\ny\r\nab\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk data longer than its size',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n',
    400,
  ],
  [
    'a bad trailer field',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX : y\r\n\r\n',
    400,
  ],
];

/** [rule, raw request, expected status, expected body]: accepted. */
const ACCEPTED = [
  ['empty lines before the request line', '\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n', 200, null],
  [
    'equal Content-Lengths',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
    200,
    'abc',
  ],
  [
    'a chunked body with extensions and trailers',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n',
    200,
    'abcde',
  ],
  ['HTTP/1.0 without Host', 'GET / HTTP/1.0\r\n\r\n', 200, null],
  ['absolute-form target', 'GET http://other.test/p?q HTTP/1.1\r\nHost: other.test\r\n\r\n', 200, null],
  ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', 200, null],
  ['bytes above 0x7f in a field value (Latin-1)', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n', 200, null],
];

const latin1 = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));

for (const backend of IO_BACKENDS) {
  const rules = suite(`HTTP/1.1 conformance on '${backendLabel(backend)}'`);

  for (const [rule, raw, status] of REFUSED) {
    rules(`${rule}: ${status}, then the connection closes`, () =>
      onLoop(backend, (loop) =>
        withServer(loop, { fetch: echoHandler, ...LIMITS }, async (server) => {
          const { responses, closed } = await exchange(loop, server.address(), latin1(raw));
          assert.is(responses.length, 1, `one response (got ${JSON.stringify(responses)})`);
          assert.is(responses[0].status, status);
          assert.is(responses[0].headers.connection, 'close');
          assert.ok(closed, 'the server closed the connection');
        }),
      ),
    );
  }

  for (const [rule, raw, status, body] of ACCEPTED) {
    rules(`${rule}: ${status}`, () =>
      onLoop(backend, (loop) =>
        withServer(loop, { fetch: echoHandler, ...LIMITS }, async (server) => {
          const { responses } = await exchange(loop, server.address(), latin1(raw), { count: 1 });
          assert.is(responses[0].status, status);
          const seen = JSON.parse(Buffer.from(responses[0].body, 'latin1').toString('utf8'));
          if (body !== null) assert.is(seen.body, body);
          if (raw.includes('caf\xe9')) assert.is(seen.headers['x-a'], 'caf\xe9');
          if (raw.startsWith('GET http://other')) assert.is(seen.url, 'http://other.test/p?q');
        }),
      ),
    );
  }

  rules('an error response reaches the client while it is still sending its body (lingering close)', () =>
    onLoop(backend, (loop) =>
      withServer(loop, { fetch: echoHandler, maxBodyBytes: 1000 }, async (server) => {
        const conn = await loop.createConnection({ port: server.address().port });
        const body = new Uint8Array(256 * 1024).fill(97);
        await conn.write(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${4 * body.length}\r\n\r\n`);
        // Keep sending while the 413 is on its way.
        const sending = (async () => {
          for (let i = 0; i < 4; i++) await conn.write(body);
        })().catch(() => undefined);
        let text = '';
        for (;;) {
          const chunk = await conn.read().catch(() => null);
          if (chunk === null) break;
          text += new TextDecoder().decode(chunk);
        }
        await sending;
        conn.close();
        assert.match(text, /^HTTP\/1\.1 413 /);
      }),
    ),
  );

  rules.run();
}
