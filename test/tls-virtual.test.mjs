// TLS under the virtual backend: is it deterministic? The handshake's
// randomness (keys, nonces, signature lengths) changes bytes, not the
// order of callbacks; node:tls's own host macrotasks are held to (the
// loop waits for them before it iterates again: tls.ts, hostSettler).
// So a run recorded on `virtual` replays on `virtual`, and two runs give
// the same trace.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createLoop } from '../ts-host/dist/index.js';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const test = suite('tls on virtual time');

/** Two TLS clients talking to a TLS echo server, in turns and at once, with timers between. */
async function program(loop) {
  const server = await loop.createServer(
    async (conn) => {
      for await (const chunk of conn) await conn.write(chunk);
      await conn.end();
    },
    { port: 0, tls: { key: certs.server.key, cert: certs.server.cert, alpnProtocols: ['x'] } },
  );
  const { port } = server.address();
  const client = async (name, rounds) => {
    const conn = await loop.createConnection({
      host: '127.0.0.1',
      port,
      tls: { ca: certs.ca.cert, alpnProtocols: ['x'] },
    });
    const got = [];
    for (let i = 0; i < rounds; i++) {
      await conn.write(`${name}:${i}\n`);
      got.push(Buffer.from(await conn.readLine()).toString());
      await loop.sleep(5);
    }
    await conn.end();
    assert.is(await conn.read(), null);
    return got.join('');
  };
  const results = await Promise.all([client('a', 5), client('b', 3)]);
  await server.close();
  return results;
}

async function record() {
  const loop = await createLoop({ backend: 'virtual', record: true });
  const results = await loop.runUntilComplete(() => program(loop));
  const trace = loop.trace();
  await loop.close();
  return { results, trace };
}

test('two runs give the same callback order, and a recording replays', async () => {
  const first = await record();
  const second = await record();
  assert.equal(first.results, ['a:0\na:1\na:2\na:3\na:4\n', 'b:0\nb:1\nb:2\n']);
  assert.ok(first.trace.iterations.length > 20, 'the trace has the traffic');
  assert.equal(second.trace.iterations, first.trace.iterations);
  assert.equal(second.trace.callbacks, first.trace.callbacks);
  const replaying = await createLoop({ backend: 'virtual', replay: JSON.stringify(first.trace) });
  const results = await replaying.runUntilComplete(() => program(replaying));
  await replaying.close();
  assert.equal(results, first.results);
});

test.run();
