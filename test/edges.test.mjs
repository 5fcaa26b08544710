// Edge cases of the I/O layer: a descriptor closed while watched and its
// number reused; address families on the virtual network; the listen
// backlog's range.
import { closeSync, readSync, writeSync } from 'node:fs';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { loadSelectorAddon } from '../ts-host/dist/backends/selector.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { until, within } from './io-helpers.mjs';

const edges = suite('I/O edges');

edges('addReader on a descriptor closed while watched and then reused fires', () =>
  onLoop('selector', async (loop) => {
    const addon = loadSelectorAddon();
    const [r, w] = addon.pipe();
    loop.addReader(r, () => undefined);
    // Closed without removeReader: epoll drops the descriptor, the loop still has the watch.
    closeSync(r);
    closeSync(w);
    const [r2, w2] = addon.pipe();
    assert.is(r2, r, 'the lowest free number came back');
    const buffer = Buffer.alloc(16);
    let got = null;
    loop.addReader(r2, () => {
      got = String(buffer.subarray(0, readSync(r2, buffer, 0, 16, null)));
    });
    writeSync(w2, 'reused');
    await until(loop, () => got !== null, 'the reader of the reused descriptor');
    assert.is(got, 'reused');
    loop.removeReader(r2);
    closeSync(r2);
    closeSync(w2);
  }),
);

edges('a connection gets a reused descriptor that addReader left behind', () =>
  onLoop('selector', async (loop) => {
    const addon = loadSelectorAddon();
    const [r, w] = addon.pipe();
    loop.addReader(r, () => undefined);
    closeSync(r);
    closeSync(w);
    // The server's accepted socket or the client takes the number back;
    // its watch must reach epoll although the stale watch is still there.
    const server = await loop.createServer(
      async (conn) => {
        for await (const chunk of conn) await conn.write(chunk);
      },
      { port: 0 },
    );
    const client = await within(loop.createConnection({ port: server.address().port }), 'connect');
    await client.write('through a reused number');
    assert.is(Buffer.from(await within(client.read(), 'the echo')).toString(), 'through a reused number');
    client.close();
    await server.close();
    loop.removeReader(r);
  }),
);

for (const backend of IO_BACKENDS) {
  edges(
    `${backendLabel(backend)}: backlog is an integer from 1 to 2^31 - 1; large ones are clamped, never skipped`,
    () =>
      onLoop(backend, async (loop) => {
        for (const backlog of [0, -1, 1.5, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
          const error = await loop
            .createServer(() => undefined, { port: 0, backlog })
            .then(
              () => null,
              (e) => e,
            );
          assert.instance(error, RangeError, `backlog ${backlog}`);
          assert.match(error.message, /createServer: backlog must be an integer from 1 to 2147483647, got number/);
        }
        const server = await loop.createServer(
          async (conn) => {
            await conn.write('listening');
          },
          { port: 0, backlog: 2 ** 31 - 1 },
        );
        const client = await within(loop.createConnection({ port: server.address().port }), 'connect');
        assert.is(
          Buffer.from(await within(client.read(), 'the reply')).toString(),
          'listening',
          'a connection was accepted',
        );
        client.close();
        await server.close();
      }),
  );
}

edges('the addon listens whatever backlog it is given', () => {
  const addon = loadSelectorAddon();
  for (const backlog of [2 ** 31, 2 ** 40, -5]) {
    const fd = addon.listen('127.0.0.1', 0, backlog);
    assert.ok(fd >= 0, `listen with backlog ${backlog}`);
    const port = Number(String(addon.address(fd, false)).split(' ')[2]);
    const client = addon.connect('127.0.0.1', port);
    assert.ok(client >= 0);
    // Listening: the connection is there to accept (a loop of tries, not a timed wait).
    let accepted = -11;
    for (let i = 0; i < 1e6 && accepted < 0; i++) accepted = addon.accept(fd);
    assert.ok(accepted >= 0, `accepted with backlog ${backlog} (${accepted})`);
    for (const d of [accepted, client, fd]) addon.close(d);
  }
});

edges('virtual: datagrams reach only endpoints of their address and family', () =>
  onLoop('virtual', async (loop) => {
    const got = { v4: [], v6: [] };
    const { transport: v4 } = await loop.createDatagramEndpoint(
      () => ({ datagramReceived: (d, from) => got.v4.push([Buffer.from(d).toString(), from]) }),
      { localAddress: { host: '127.0.0.1', port: 0 } },
    );
    const { transport: v6 } = await loop.createDatagramEndpoint(
      () => ({ datagramReceived: (d, from) => got.v6.push([Buffer.from(d).toString(), from]) }),
      { localAddress: { host: '::1', port: 0 } },
    );
    const errors = [];
    const { transport: sender4 } = await loop.createDatagramEndpoint(() => ({ errorReceived: (e) => errors.push(e) }), {
      localAddress: { host: '127.0.0.1', port: 0 },
    });
    // An IPv4 endpoint cannot send to an IPv6 address: an error, not a delivery to ::1.
    sender4.sendto('to ::1', { host: '::1', port: v6.localAddress.port });
    // To the IPv4 endpoint's port at an address it is not bound to: lost.
    sender4.sendto('to 127.0.0.2', { host: '127.0.0.2', port: v4.localAddress.port });
    sender4.sendto('to 127.0.0.1', { host: '127.0.0.1', port: v4.localAddress.port });
    const { transport: sender6 } = await loop.createDatagramEndpoint(() => ({}), {
      localAddress: { host: '::1', port: 0 },
    });
    sender6.sendto('to ::1 from ::1', { host: '::1', port: v6.localAddress.port });
    await until(loop, () => got.v4.length === 1 && got.v6.length === 1 && errors.length === 1, 'deliveries');
    await loop.sleep(10);
    assert.equal(
      got.v4.map(([t]) => t),
      ['to 127.0.0.1'],
    );
    assert.equal(
      got.v6.map(([t]) => t),
      ['to ::1 from ::1'],
    );
    assert.equal(got.v6[0][1], { host: '::1', port: sender6.localAddress.port, family: 'IPv6' });
    assert.equal(got.v4[0][1], { host: '127.0.0.1', port: sender4.localAddress.port, family: 'IPv4' });
    assert.match(String(errors[0]), /EAFNOSUPPORT/);
    for (const t of [v4, v6, sender4, sender6]) t.close();
  }),
);

edges.run();
