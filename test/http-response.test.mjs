// The light Response (installed as globalThis.Response by serve() on Node):
// it behaves as the runtime's own, and the server writes what it recorded.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { LightResponse, NativeResponse, lightArgsOf } from '../ts-host/dist/http/light-response.js';
import { onLoop } from './helpers.mjs';
import { exchange, withServer } from './http-helpers.mjs';

const light = suite('LightResponse');

light('records a string, bytes or no body with a plain init; answers as the real one would', async () => {
  const r = new LightResponse('hello', { status: 201, statusText: 'Made', headers: { 'X-A': '1' } });
  assert.ok(lightArgsOf(r) !== undefined, 'nothing built yet');
  assert.ok(r instanceof NativeResponse && r instanceof LightResponse);
  assert.ok(new NativeResponse('x') instanceof LightResponse);
  assert.is(r.status, 201);
  assert.is(r.statusText, 'Made');
  assert.ok(r.ok);
  assert.is(r.headers.get('x-a'), '1');
  assert.is(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
  assert.is(await r.text(), 'hello');
  assert.ok(r.bodyUsed);
  assert.is(await new LightResponse(new Uint8Array([104, 105])).text(), 'hi');
  assert.is(new LightResponse(null, { status: 204 }).body, null);
  const json = LightResponse.json({ a: 1 }, { status: 202 });
  assert.ok(lightArgsOf(json) !== undefined);
  assert.is(json.headers.get('content-type'), 'application/json');
  assert.equal(await json.json(), { a: 1 });
  assert.is(await new LightResponse('c').clone().text(), 'c');
});

light("the real constructor's errors, at construction", () => {
  assert.throws(() => new LightResponse('x', { status: 99 }), RangeError);
  assert.throws(() => new LightResponse('x', { headers: { 'bad name': 'v' } }), TypeError);
  assert.throws(() => new LightResponse('x', { status: 204 }), TypeError);
  assert.throws(() => LightResponse('x'), TypeError);
});

light('other bodies and Headers inits build the real Response at once', async () => {
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(new Uint8Array([97]));
      c.close();
    },
  });
  const r = new LightResponse(stream, { headers: new Headers({ 'x-b': '2' }) });
  assert.is(lightArgsOf(r), undefined);
  assert.is(r.headers.get('x-b'), '2');
  assert.is(await r.text(), 'a');
});

light.run();

const written = suite('serve() writes responses');

written('light and real responses with fields, statuses and bodies of each kind', () =>
  onLoop('virtual', (loop) => {
    const responses = {
      '/light': () =>
        new LightResponse('text', {
          status: 202,
          headers: [
            ['x-one', '1'],
            ['set-cookie', 'a=1'],
            ['set-cookie', 'b=2'],
          ],
        }),
      '/touched': () => {
        const r = new LightResponse('touched');
        r.headers.set('x-touched', 'yes');
        return r;
      },
      '/native': () => new NativeResponse('native', { headers: { 'x-n': 'n' } }),
      '/bytes': () => new NativeResponse(new Uint8Array([1, 2, 3])),
      '/json': () => LightResponse.json({ ok: true }),
      '/empty': () => new LightResponse(null, { status: 204 }),
      '/utf8': () => new LightResponse('héllo'),
    };
    return withServer(loop, { fetch: (r) => responses[new URL(r.url).pathname]() }, async (server) => {
      const paths = Object.keys(responses);
      const raw = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join('');
      const { responses: got } = await exchange(loop, server.address(), raw, { count: paths.length });
      const [lit, touched, native, bytes, json, empty, utf8] = got;
      assert.is(lit.status, 202);
      assert.is(lit.headers['set-cookie'], 'a=1, b=2', 'two set-cookie lines');
      assert.is(lit.headers['content-type'], 'text/plain;charset=UTF-8');
      assert.is(lit.body, 'text');
      assert.is(touched.headers['x-touched'], 'yes');
      assert.is(touched.body, 'touched');
      assert.is(native.headers['x-n'], 'n');
      assert.is(native.body, 'native');
      assert.is(bytes.headers['content-length'], '3');
      assert.is(json.headers['content-type'], 'application/json');
      assert.is(json.body, '{"ok":true}');
      assert.is(empty.status, 204);
      assert.is(empty.headers['content-length'], undefined);
      assert.is(utf8.headers['content-length'], '6');
      assert.is(Buffer.from(utf8.body, 'latin1').toString(), 'héllo');
    });
  }),
);

written.run();
