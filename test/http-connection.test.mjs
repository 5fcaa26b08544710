// The connection state machine alone: bytes in, events out, no I/O, no
// timers. Then properties over arbitrary bytes and arbitrary chunkings.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Http1Connection, MAX_DRAIN_BYTES } from '../ts-host/dist/http/connection.js';
import { loadParser } from '../ts-host/dist/http/parser.js';

const parser = await loadParser();
const LIMITS = { maxHeaderBytes: 1024, maxHeaders: 20, maxBodyBytes: 4096 };
const bytes = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const str = (b) => String.fromCharCode(...b);

/** A connection whose events are recorded; `answer` ends each response once its request is complete. */
function machine({ limits = LIMITS, answer = true } = {}) {
  const events = [];
  const heads = [];
  const respond = () => {
    conn.responseHead(200, 'OK', '', 0, 'now', false);
    conn.responseEnd();
  };
  const conn = new Http1Connection(parser, limits, {
    head(head) {
      heads.push(head);
      events.push(['head', head.method(), head.target()]);
      if (answer && conn.requestComplete()) respond();
    },
    body(chunk) {
      const last = events[events.length - 1];
      if (last[0] === 'body') last[1] += str(chunk);
      else events.push(['body', str(chunk)]);
    },
    bodyEnd() {
      events.push(['end']);
      if (answer) respond();
    },
    error(status, reason) {
      events.push(['error', status, reason]);
    },
  });
  return { conn, events, heads };
}

const unit = suite('Http1Connection');

unit('a head split byte by byte: one head event, the strings decoded on demand', () => {
  const { conn, events, heads } = machine();
  for (const b of bytes('GET /x?y HTTP/1.1\r\nHost: h\r\nX-Name: Value\r\n\r\n')) conn.receive(Uint8Array.of(b));
  assert.equal(events, [['head', 'GET', '/x?y']]);
  assert.equal(heads[0].fields(), [
    ['host', 'h'],
    ['x-name', 'Value'],
  ]);
  assert.is(heads[0].host(), 'h');
  assert.ok(heads[0].keepAlive);
});

unit('bodies by Content-Length and chunked with trailers, across chunk boundaries', () => {
  const { conn, events } = machine({ answer: false });
  conn.receive(bytes('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel'));
  conn.receive(bytes('lo'));
  assert.equal(events, [['head', 'POST', '/a'], ['body', 'hello'], ['end']]);
  conn.responseHead(200, 'OK', '', 0, 'now', false);
  conn.responseEnd();
  const raw =
    'POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n';
  for (const b of bytes(raw)) conn.receive(Uint8Array.of(b));
  assert.equal(events.slice(3), [['head', 'POST', '/b'], ['body', 'abc0123456789abcdef'], ['end']]);
});

unit('a pipelined request waits in the buffer until the response before it ends', () => {
  const { conn, events } = machine({ answer: false });
  conn.receive(bytes('GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n'));
  assert.equal(events, [['head', 'GET', '/1']]);
  assert.ok(conn.buffered() > 0);
  conn.responseHead(200, 'OK', '', 0, 'now', false);
  assert.ok(conn.responseEnd());
  assert.equal(events, [
    ['head', 'GET', '/1'],
    ['head', 'GET', '/2'],
  ]);
});

unit('response framing: length, chunked, none for HEAD/204/304, until close on HTTP/1.0', () => {
  const respond = (request, status, length) => {
    const { conn } = machine({ answer: false });
    conn.receive(bytes(request));
    return conn.responseHead(status, 'S', 'x: y\r\n', length, 'D', false);
  };
  const get11 = 'GET / HTTP/1.1\r\nHost: h\r\n\r\n';
  assert.is(respond(get11, 200, 3), 'HTTP/1.1 200 S\r\nx: y\r\ncontent-length: 3\r\ndate: D\r\n\r\n');
  assert.is(respond(get11, 200, -1), 'HTTP/1.1 200 S\r\nx: y\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n');
  assert.is(respond(get11, 204, 0), 'HTTP/1.1 204 S\r\nx: y\r\ndate: D\r\n\r\n');
  assert.is(respond(get11, 304, 5), 'HTTP/1.1 304 S\r\nx: y\r\ndate: D\r\n\r\n');
  assert.is(
    respond('HEAD / HTTP/1.1\r\nHost: h\r\n\r\n', 200, 7),
    'HTTP/1.1 200 S\r\nx: y\r\ncontent-length: 7\r\ndate: D\r\n\r\n',
  );
  assert.is(
    respond('GET / HTTP/1.0\r\n\r\n', 200, -1),
    'HTTP/1.0 200 S\r\nx: y\r\nconnection: close\r\ndate: D\r\n\r\n',
  );
  assert.is(
    respond('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 200, 1),
    'HTTP/1.0 200 S\r\nx: y\r\ncontent-length: 1\r\nconnection: keep-alive\r\ndate: D\r\n\r\n',
  );
  assert.is(
    respond('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 200, 0),
    'HTTP/1.1 200 S\r\nx: y\r\ncontent-length: 0\r\nconnection: close\r\ndate: D\r\n\r\n',
  );
});

unit('100 Continue: once, only when expected, only before the response', () => {
  const { conn } = machine({ answer: false });
  conn.receive(bytes('PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n'));
  assert.is(conn.continueLine(), 'HTTP/1.1 100 Continue\r\n\r\n');
  assert.is(conn.continueLine(), '');
  const other = machine({ answer: false });
  other.conn.receive(bytes('PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n'));
  assert.is(other.conn.continueLine(), '');
});

unit('a response before the body: small rests are read and dropped, large ones close', () => {
  const small = machine({ answer: false });
  small.conn.receive(bytes('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab'));
  assert.not.match(small.conn.responseHead(200, 'OK', '', 0, 'D', false), /connection: close/);
  assert.ok(small.conn.responseEnd());
  small.conn.receive(bytes('cdefghijGET /next HTTP/1.1\r\nHost: h\r\n\r\n'));
  assert.equal(small.events.at(-1), ['head', 'GET', '/next']);
  const large = machine({ answer: false, limits: { ...LIMITS, maxBodyBytes: 10 * MAX_DRAIN_BYTES } });
  large.conn.receive(bytes(`POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${2 * MAX_DRAIN_BYTES}\r\n\r\n`));
  assert.match(large.conn.responseHead(200, 'OK', '', 0, 'D', false), /connection: close/);
  assert.not.ok(large.conn.responseEnd());
});

unit('limits: a long head is 431 even before its end arrives; a long body 413', () => {
  const head = machine();
  head.conn.receive(bytes(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`));
  assert.equal(
    head.events.map((e) => e.slice(0, 2)),
    [['error', 431]],
  );
  assert.ok(head.conn.isClosed());
  const body = machine();
  body.conn.receive(bytes('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4097\r\n\r\n'));
  assert.equal(
    body.events.map((e) => e.slice(0, 2)),
    [['error', 413]],
  );
});

unit.run();

// ------------------------------------------------------------ properties

/** Splits `data` at the given cut points. */
function chunked(data, cuts) {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const parts = [];
  let at = 0;
  for (const p of points) {
    parts.push(data.subarray(at, p));
    at = p;
  }
  parts.push(data.subarray(at));
  return parts;
}

function run(data, cuts) {
  const m = machine();
  let thrown = null;
  try {
    for (const part of chunked(data, cuts)) m.conn.receive(part);
  } catch (error) {
    thrown = error;
  }
  return { events: m.events, thrown };
}

const props = suite('Http1Connection properties');

props('arbitrary bytes, arbitrarily chunked: never throws, the same events as in one piece', () => {
  const token = fc.constantFrom(
    'GET',
    'POST',
    'HTTP/1.1',
    'HTTP/1.0',
    '\r\n',
    '\n',
    '\r',
    ' ',
    ':',
    'Host',
    'Content-Length',
    'Transfer-Encoding',
    'chunked',
    '0',
    '5',
    'a',
    '\x00',
    '\xff',
    ';',
    ',',
  );
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.array(token, { maxLength: 60 }).map((t) => bytes(t.join(''))),
  );
  fc.assert(
    fc.property(input, fc.array(fc.nat(), { maxLength: 12 }), (data, cuts) => {
      const whole = run(data, []);
      const split = run(data, cuts);
      assert.is(whole.thrown, null);
      assert.is(split.thrown, null);
      assert.equal(split.events, whole.events);
      const errors = whole.events.filter((e) => e[0] === 'error');
      assert.ok(errors.length <= 1 && (errors.length === 0 || whole.events.at(-1)[0] === 'error'), 'an error is final');
    }),
    { numRuns: 500 },
  );
});

props('well-formed pipelined requests, arbitrarily chunked: every head and body arrives intact, in order', () => {
  const name = fc
    .stringMatching(/^[a-z][a-z0-9-]{0,11}$/)
    .filter((n) => !['host', 'content-length', 'transfer-encoding', 'expect', 'connection'].includes(n));
  const value = fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/);
  const request = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PROPFIND'),
    path: fc.stringMatching(/^\/[a-z0-9/?=&.-]{0,20}$/),
    fields: fc.array(fc.tuple(name, value), { maxLength: 6 }),
    body: fc.string({ maxLength: 200 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
    chunks: fc.option(fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 5 })),
  });
  fc.assert(
    fc.property(
      fc.array(request, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (requests, cuts) => {
        let raw = '';
        for (const r of requests) {
          raw += `${r.method} ${r.path} HTTP/1.1\r\nHost: h\r\n${r.fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}`;
          if (r.chunks === null) {
            raw += `Content-Length: ${r.body.length}\r\n\r\n${r.body}`;
          } else {
            raw += 'Transfer-Encoding: chunked\r\n\r\n';
            let rest = r.body;
            for (const size of r.chunks) {
              if (rest.length === 0) break;
              const piece = rest.slice(0, size);
              rest = rest.slice(size);
              raw += `${piece.length.toString(16)}\r\n${piece}\r\n`;
            }
            if (rest.length > 0) raw += `${rest.length.toString(16)}\r\n${rest}\r\n`;
            raw += '0\r\n\r\n';
          }
        }
        const m = machine();
        for (const part of chunked(bytes(raw), cuts)) m.conn.receive(part);
        const expected = [];
        for (const r of requests) {
          expected.push(['head', r.method, r.path]);
          if (r.body.length > 0) expected.push(['body', r.body]);
          if (r.body.length > 0 || r.chunks !== null) expected.push(['end']);
        }
        assert.equal(m.events, expected);
        for (const [i, r] of requests.entries())
          assert.equal(m.heads[i].fields().slice(1, 1 + r.fields.length), r.fields);
      },
    ),
    { numRuns: 300 },
  );
});

props.run();
