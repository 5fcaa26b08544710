// A custom backend checked at run time: a watch() that returns something
// other than 0 or a negative errno, and read, write or recvFrom counts
// larger than what was asked, fail that connection (or endpoint) with a
// BackendError naming the backend and the member; the loop and the other
// connections go on. The lying backend is the selector with lies on cue
// (test/fixtures/backends.mjs).
import { fileURLToPath } from 'node:url';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { BackendError, createLoop } from '../ts-host/dist/index.js';
import { lies } from './fixtures/backends.mjs';
import { until } from './io-helpers.mjs';

const LYING = `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:lyingSelector`;
const test = suite('backend results checked at run time');

async function onLyingLoop(fn) {
  const loop = await createLoop({ backend: LYING });
  const reports = [];
  loop.setExceptionHandler((_, context) => reports.push(context));
  try {
    return await loop.runUntilComplete(() => fn(loop, reports));
  } finally {
    lies.watch = false;
    await loop.close();
  }
}

/** An echo server whose handler records how each connection's reading ended. */
async function echo(loop, endings) {
  return loop.createServer(
    async (conn) => {
      try {
        for await (const chunk of conn) await conn.write(chunk);
        endings.push('end');
      } catch (error) {
        endings.push(error);
      }
    },
    { port: 0 },
  );
}

test('sockets.read reporting more than the buffer holds fails that connection only', () =>
  onLyingLoop(async (loop) => {
    const endings = [];
    const server = await echo(loop, endings);
    const port = server.address().port;
    const liar = await loop.createConnection({ port });
    const honest = await loop.createConnection({ port });
    await liar.write('LIE about the length');
    await until(loop, () => endings.length === 1, 'the lying read failed');
    assert.instance(endings[0], BackendError);
    assert.is(endings[0].message, "backend 'lying': sockets.read returned 70000 for a 65536-byte read");
    assert.is(await liar.read(), null, 'the server closed the failed connection');
    await honest.write('honest bytes');
    assert.is(Buffer.from(await honest.read()).toString(), 'honest bytes', 'another connection goes on');
    liar.close();
    honest.close();
    await server.close();
  }));

test('sockets.write reporting more than it was given fails the write and its connection', () =>
  onLyingLoop(async (loop) => {
    let accepted;
    const server = await loop.createServer(
      (conn) => {
        accepted = conn;
      },
      { port: 0 },
    );
    const client = await loop.createConnection({ port: server.address().port });
    await until(loop, () => accepted !== undefined, 'accept');
    const error = await client.write('FIB').then(
      () => null,
      (e) => e,
    );
    assert.instance(error, BackendError);
    assert.is(error.message, "backend 'lying': sockets.write returned 4 for a 3-byte write");
    assert.ok(client.closed, 'the connection was failed');
    assert.is(await accepted.read(), null);
    accepted.close();
    await server.close();
  }));

test('watch() returning undefined fails the read that needed it; addReader throws', () =>
  onLyingLoop(async (loop) => {
    const endings = [];
    const server = await echo(loop, endings);
    const client = await loop.createConnection({ port: server.address().port });
    await until(loop, () => server.connections === 1, 'accept');
    lies.watch = true;
    const error = await client.read().then(
      () => null,
      (e) => e,
    );
    assert.instance(error, BackendError);
    assert.is(error.message, "backend 'lying': watch returned undefined, not 0 or a negative errno");
    assert.ok(client.closed);
    const thrown = (() => {
      try {
        loop.addReader(0, () => undefined);
      } catch (e) {
        return e;
      }
    })();
    assert.instance(thrown, BackendError);
    assert.match(thrown.message, /watch returned undefined/);
    lies.watch = false;
    const other = await loop.createConnection({ port: server.address().port });
    await other.write('still works');
    assert.is(Buffer.from(await other.read()).toString(), 'still works');
    other.close();
    server.abortClients();
    await server.close();
  }));

test('a protocol hears connectionLost(BackendError); other transports go on', () =>
  onLyingLoop(async (loop) => {
    const lost = [];
    const server = await loop.createProtocolServer(
      () => ({
        connectionMade(t) {
          this.t = t;
        },
        dataReceived(data) {
          this.t.write(data);
        },
        connectionLost(error) {
          lost.push(error);
        },
      }),
      { port: 0 },
    );
    const port = server.address().port;
    const liar = await loop.createConnection({ port });
    const honest = await loop.createConnection({ port });
    await liar.write('LIE');
    await until(loop, () => lost.length === 1, 'connectionLost');
    assert.instance(lost[0], BackendError);
    assert.match(lost[0].message, /sockets\.read returned 70000 for a 65536-byte read/);
    await honest.write('fine');
    assert.is(Buffer.from(await honest.read()).toString(), 'fine');
    liar.close();
    honest.close();
    server.abortClients();
    await server.close();
  }));

test('recvFrom reporting a datagram larger than the buffer fails that endpoint', () =>
  onLyingLoop(async (loop) => {
    const errors = [];
    let lost = 0;
    const { transport: receiver } = await loop.createDatagramEndpoint(
      () => ({
        errorReceived: (e) => errors.push(e),
        connectionLost: () => lost++,
      }),
      { localAddress: { host: '127.0.0.1', port: 0 } },
    );
    const { transport: sender } = await loop.createDatagramEndpoint(() => ({}), {
      localAddress: { host: '127.0.0.1', port: 0 },
    });
    sender.sendto('LIE', { host: '127.0.0.1', port: receiver.localAddress.port });
    await until(loop, () => lost === 1, 'connectionLost');
    assert.instance(errors[0], BackendError);
    assert.match(errors[0].message, /backend 'lying': sockets\.recvFrom returned 65508 for a 65507-byte receive/);
    assert.ok(receiver.isClosing());
    assert.is(sender.isClosing(), false, 'the other endpoint goes on');
    sender.close();
  }));

test.run();
