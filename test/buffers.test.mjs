// Buffers a program can keep: a chunk handed to a program is its own.
// Transferring it (postMessage with its buffer in the transfer list)
// affects no other read, on this connection or another, and its `.buffer`
// holds nothing of another connection's bytes; for streams, protocols and
// datagrams, on every backend.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { until } from './io-helpers.mjs';

/** Transfers `data`'s buffer through a MessageChannel, as a program handing bytes to a worker does. */
function transfer(data) {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(data, [data.buffer]);
  port1.close();
  port2.close();
  assert.is(data.byteLength, 0, 'the transfer detached the array');
}

/** Asserts `data`'s whole buffer holds only bytes of `own` (the one letter its connection sends). */
function onlyOwnBytes(data, own, what) {
  const all = new Uint8Array(data.buffer);
  for (const byte of all) {
    if (byte !== own.charCodeAt(0) && byte !== 10) {
      assert.unreachable(
        `${what}: its buffer (${all.length} bytes for ${data.byteLength}) holds a byte that is not its own: ${byte}`,
      );
    }
  }
}

for (const backend of IO_BACKENDS) {
  const test = suite(`buffers on '${backendLabel(backend)}'`);

  test('streams: a transferred chunk or frame affects no other read', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createServer(
        async (conn) => {
          for await (const chunk of conn) await conn.write(chunk);
          await conn.end();
        },
        { port: 0 },
      );
      const port = server.address().port;
      const a = await loop.createConnection({ port });
      const b = await loop.createConnection({ port });
      for (let round = 0; round < 20; round++) {
        await Promise.all([a.write('a'.repeat(300)), b.write('b'.repeat(300))]);
        for (const [conn, letter] of [
          [a, 'a'],
          [b, 'b'],
        ]) {
          let got = 0;
          while (got < 300) {
            const chunk = await conn.read();
            onlyOwnBytes(chunk, letter, `a chunk of connection ${letter}`);
            got += chunk.length;
            transfer(chunk);
          }
        }
      }
      // Frames split from a chunk: transferring one leaves the rest readable.
      await a.write('aaa\naaaa\naaaaa');
      const line = await a.readLine();
      onlyOwnBytes(line, 'a', 'a line');
      transfer(line);
      const exactly = await a.readExactly(4);
      transfer(exactly);
      assert.is(Buffer.from(await a.readExactly(6)).toString(), '\naaaaa', 'what followed the frames');
      await b.write('still works');
      assert.is(Buffer.from(await b.read()).toString(), 'still works');
      a.close();
      b.close();
      await server.close();
    }));

  test('protocols: dataReceived may transfer its array', () =>
    onLoop(backend, async (loop) => {
      const received = [];
      const server = await loop.createProtocolServer(
        () => ({
          connectionMade(t) {
            this.t = t;
          },
          dataReceived(data) {
            const text = Buffer.from(data).toString();
            onlyOwnBytes(data, text[0], 'dataReceived');
            received.push(text);
            transfer(data);
            this.t.write(text);
          },
        }),
        { port: 0 },
      );
      const port = server.address().port;
      const a = await loop.createConnection({ port });
      const b = await loop.createConnection({ port });
      for (let round = 0; round < 20; round++) {
        await Promise.all([a.write('a'.repeat(100)), b.write('b'.repeat(100))]);
        for (const [conn, letter] of [
          [a, 'a'],
          [b, 'b'],
        ]) {
          let got = '';
          while (got.length < 100) got += Buffer.from(await conn.read()).toString();
          assert.is(got, letter.repeat(100), `round ${round}: ${letter} echoed`);
        }
      }
      assert.ok(received.length >= 40);
      a.close();
      b.close();
      server.abortClients();
      await server.close();
    }));

  test('datagrams: datagramReceived may transfer its array', () =>
    onLoop(backend, async (loop) => {
      const got = [];
      const { transport: receiver } = await loop.createDatagramEndpoint(
        () => ({
          datagramReceived(data) {
            const text = Buffer.from(data).toString();
            onlyOwnBytes(data, text[0], 'datagramReceived');
            got.push(text);
            transfer(data);
          },
        }),
        { localAddress: { host: '127.0.0.1', port: 0 } },
      );
      const to = { host: '127.0.0.1', port: receiver.localAddress.port };
      const senders = await Promise.all(
        ['a', 'b'].map(() => loop.createDatagramEndpoint(() => ({}), { localAddress: { host: '127.0.0.1', port: 0 } })),
      );
      for (let i = 0; i < 20; i++) {
        senders[0].transport.sendto('a'.repeat(50), to);
        senders[1].transport.sendto('b'.repeat(70), to);
        await until(loop, () => got.length === 2 * (i + 1), `datagram pair ${i}`);
      }
      assert.is(got.filter((t) => t === 'a'.repeat(50)).length, 20);
      assert.is(got.filter((t) => t === 'b'.repeat(70)).length, 20);
      for (const s of senders) s.transport.close();
      receiver.close();
    }));

  test.run();
}
