// Datagram endpoints (asyncio's create_datagram_endpoint): one suite run
// against every backend, bad input included.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import {
  AddressInUseError,
  ConnectionClosedError,
  LoopClosedError,
  NotSupportedError,
  createLoop,
} from '../ts-host/dist/index.js';
import { fileURLToPath } from 'node:url';
import { lies } from './fixtures/backends.mjs';
import { IO_BACKENDS, SELECTOR, backendLabel, onLoop } from './helpers.mjs';
import { until } from './io-helpers.mjs';

const text = (data) => Buffer.from(data).toString();
/** The selector with lies on cue (test/fixtures/backends.mjs): here, sends that find the system busy. */
const LYING = `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:lyingSelector`;

/** A protocol that records what happens to it; `received` resolves after `count` datagrams. */
class Recorder {
  constructor() {
    this.events = [];
    this.datagrams = [];
    this.errors = [];
    this.lost = new Promise((resolve) => (this.onLost = resolve));
  }
  connectionMade(transport) {
    this.transport = transport;
    this.events.push('made');
  }
  datagramReceived(data, addr) {
    this.datagrams.push({ data: text(data), length: data.length, from: addr });
  }
  errorReceived(error) {
    this.errors.push(error);
  }
  connectionLost(error) {
    this.events.push(error === null ? 'lost' : `lost: ${error.message}`);
    this.onLost();
  }
}

/** Echoes every datagram to its sender. */
class Echo {
  connectionMade(transport) {
    this.transport = transport;
  }
  datagramReceived(data, addr) {
    this.transport.sendto(data, addr);
  }
}

for (const backend of IO_BACKENDS) {
  const udp = suite(`datagram endpoints on '${backendLabel(backend)}'`);

  udp('echo: a connected client sends and receives; connectionMade first, connectionLost(null) last', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createDatagramEndpoint(() => new Echo(), { localAddress: { port: 0 } });
      const { port } = server.transport.localAddress;
      assert.is(server.transport.localAddress.host, '127.0.0.1');
      assert.is(server.transport.remoteAddress, null);
      const { transport, protocol } = await loop.createDatagramEndpoint(() => new Recorder(), {
        remoteAddress: { port },
      });
      assert.equal(protocol.events, ['made'], 'connectionMade ran before the endpoint was handed over');
      assert.is(transport.remoteAddress.port, port);
      for (const message of ['one', 'two', 'three']) transport.sendto(message);
      await until(
        loop,
        () => protocol.datagrams.length === 3,
        'three datagrams',
        () => `(${protocol.datagrams.length} arrived)`,
      );
      assert.equal(
        protocol.datagrams.map((d) => d.data),
        ['one', 'two', 'three'],
        'each datagram arrives whole, in order (loopback)',
      );
      assert.is(protocol.datagrams[0].from.port, port);
      transport.close();
      assert.ok(transport.isClosing());
      await protocol.lost;
      assert.equal(protocol.events, ['made', 'lost']);
      assert.throws(
        () => transport.sendto('late'),
        (e) => e instanceof ConnectionClosedError,
      );
      server.transport.close();
    }),
  );

  udp('sendto() leaves the caller its array: changing it right after changes nothing sent', () =>
    onLoop(backend, async (loop) => {
      const hub = await loop.createDatagramEndpoint(() => new Recorder(), { localAddress: { port: 0 } });
      const { transport } = await loop.createDatagramEndpoint(() => new Recorder(), {
        remoteAddress: hub.transport.localAddress,
      });
      const buffer = new Uint8Array(5);
      for (const word of ['alpha', 'bravo', 'gamma']) {
        buffer.set(Buffer.from(word));
        transport.sendto(buffer);
        buffer.fill(0x3f); // '?'
      }
      await until(loop, () => hub.protocol.datagrams.length === 3, 'three datagrams');
      assert.equal(
        hub.protocol.datagrams.map((d) => d.data),
        ['alpha', 'bravo', 'gamma'],
      );
      transport.close();
      hub.transport.close();
    }),
  );

  udp('an unconnected endpoint talks to several peers and learns who sent what', () =>
    onLoop(backend, async (loop) => {
      const hub = await loop.createDatagramEndpoint(() => new Recorder(), {
        localAddress: { host: '127.0.0.1', port: 0 },
      });
      const peers = await Promise.all(
        [0, 1, 2].map(() => loop.createDatagramEndpoint(() => new Recorder(), { localAddress: { port: 0 } })),
      );
      for (const [i, { transport }] of peers.entries()) transport.sendto(`from peer ${i}`, hub.transport.localAddress);
      await until(
        loop,
        () => hub.protocol.datagrams.length === 3,
        'three datagrams at the hub',
        () => `(${hub.protocol.datagrams.length} arrived)`,
      );
      for (const { data, from } of hub.protocol.datagrams) {
        const i = Number(data.at(-1));
        assert.is(from.port, peers[i].transport.localAddress.port, `${data} came from peer ${i}'s port`);
        hub.transport.sendto(`reply ${i}`, from);
      }
      await until(loop, () => peers.every((p) => p.protocol.datagrams.length === 1), 'a reply to every peer');
      for (const [i, { protocol }] of peers.entries()) assert.is(protocol.datagrams[0].data, `reply ${i}`);
      for (const { transport } of [hub, ...peers]) transport.close();
    }),
  );

  udp('datagram boundaries hold: empty, small and 60 KB datagrams arrive as sent', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createDatagramEndpoint(() => new Echo(), { localAddress: { port: 0 } });
      const { transport, protocol } = await loop.createDatagramEndpoint(() => new Recorder(), {
        remoteAddress: server.transport.localAddress,
      });
      const big = new Uint8Array(60_000).map((_, i) => i % 251);
      transport.sendto(new Uint8Array(0));
      transport.sendto('x');
      transport.sendto(big);
      await until(
        loop,
        () => protocol.datagrams.length === 3,
        'three datagrams',
        () => `(${protocol.datagrams.length} arrived)`,
      );
      assert.equal(
        protocol.datagrams.map((d) => d.length),
        [0, 1, 60_000],
      );
      transport.close();
      server.transport.close();
    }),
  );

  udp('a protocol method that throws is reported; its endpoint is aborted; others go on', () =>
    onLoop(backend, async (loop) => {
      const reported = [];
      loop.setExceptionHandler((_loop, context) => reported.push(context.message));
      const events = [];
      const failing = await loop.createDatagramEndpoint(
        () => ({
          datagramReceived() {
            throw new Error('bad datagram');
          },
          connectionLost(error) {
            events.push(error);
          },
        }),
        { localAddress: { port: 0 } },
      );
      const sender = await loop.createDatagramEndpoint(() => new Recorder(), {
        remoteAddress: failing.transport.localAddress,
      });
      sender.transport.sendto('boom');
      await until(loop, () => events.length === 1, 'connectionLost after the failing datagramReceived');
      assert.equal(events, [null]);
      assert.ok(failing.transport.isClosing());
      assert.match(reported[0], /protocol.datagramReceived\(\) failed; its endpoint was aborted/);
      sender.transport.close();
    }),
  );

  udp('binding a port that is taken is AddressInUseError', () =>
    onLoop(backend, async (loop) => {
      const first = await loop.createDatagramEndpoint(() => ({}), { localAddress: { port: 0 } });
      const error = await loop
        .createDatagramEndpoint(() => ({}), { localAddress: { port: first.transport.localAddress.port } })
        .catch((e) => e);
      assert.instance(error, AddressInUseError);
      first.transport.close();
    }),
  );

  udp('closing the loop while an endpoint opens rejects it with LoopClosedError, or closes it', async () => {
    const loop = await createLoop({ backend });
    let opening;
    await loop.runUntilComplete(() => {
      opening = loop
        .createDatagramEndpoint(() => ({}), { localAddress: { port: 0 } })
        .then(
          (endpoint) => endpoint,
          (error) => error,
        );
    });
    await loop.close();
    const outcome = await opening;
    // Readiness backends open at once (then the loop closed it); completion hosts may answer later.
    if (outcome instanceof Error) assert.instance(outcome, LoopClosedError);
    else assert.ok(outcome.transport.isClosing());
  });

  udp('closing the loop closes its endpoints', async () => {
    const loop = await createLoop({ backend });
    const endpoint = await loop.runUntilComplete(() =>
      loop.createDatagramEndpoint(() => ({}), { localAddress: { port: 0 } }),
    );
    await loop.close();
    assert.ok(endpoint.transport.isClosing());
  });

  udp('bad input: errors naming the argument; the endpoint stays usable', () =>
    onLoop(backend, async (loop) => {
      const cases = [
        [
          () => loop.createDatagramEndpoint(() => ({}), {}),
          TypeError,
          /createDatagramEndpoint: give localAddress, remoteAddress or both/,
        ],
        [() => loop.createDatagramEndpoint(() => ({}), null), TypeError, /options must be an object/],
        [
          () => loop.createDatagramEndpoint('factory', { localAddress: {} }),
          TypeError,
          /protocolFactory must be a function/,
        ],
        [
          () => loop.createDatagramEndpoint(() => 5, { localAddress: {} }),
          TypeError,
          /the protocol factory must return an object, got number 5/,
        ],
        [
          () => loop.createDatagramEndpoint(() => ({}), { localAddress: { port: 70000 } }),
          RangeError,
          /localAddress.port must be an integer from 0 to 65535/,
        ],
        [
          () => loop.createDatagramEndpoint(() => ({}), { remoteAddress: { host: '127.0.0.1' } }),
          RangeError,
          /remoteAddress.port must be an integer from 1 to 65535, got undefined/,
        ],
        [
          () => loop.createDatagramEndpoint(() => ({}), { remoteAddress: 'here' }),
          TypeError,
          /remoteAddress must be an object/,
        ],
        [
          () => loop.createDatagramEndpoint(() => ({}), { localAddress: { host: '' } }),
          TypeError,
          /localAddress.host must be a non-empty string/,
        ],
      ];
      for (const [attempt, ErrorClass, pattern] of cases) {
        const error = await attempt().catch((e) => e);
        assert.instance(error, ErrorClass, `${pattern}: ${error}`);
        assert.match(error.message, pattern);
      }
      const open = await loop.createDatagramEndpoint(() => ({}), { localAddress: { port: 0 } });
      const connected = await loop.createDatagramEndpoint(() => ({}), { remoteAddress: open.transport.localAddress });
      const sendCases = [
        [() => open.transport.sendto('x'), TypeError, /sendto: addr is required: this endpoint has no remote address/],
        [
          () => open.transport.sendto('x', { host: 'localhost', port: 9 }),
          TypeError,
          /addr.host must be a numeric IP address, got string "localhost"/,
        ],
        [
          () => open.transport.sendto('x', { host: '127.0.0.1', port: 0 }),
          RangeError,
          /addr.port must be an integer from 1 to 65535, got number 0/,
        ],
        [
          () => open.transport.sendto(42, { host: '127.0.0.1', port: 9 }),
          TypeError,
          /sendto: data must be a Uint8Array or a string/,
        ],
        [
          () => open.transport.sendto(new Uint8Array(70_000), { host: '127.0.0.1', port: 9 }),
          RangeError,
          /a datagram holds at most 65507 bytes, got 70000/,
        ],
        [
          () => connected.transport.sendto('x', { host: '127.0.0.1', port: 9 }),
          TypeError,
          /this endpoint is connected; send without addr/,
        ],
      ];
      for (const [attempt, ErrorClass, pattern] of sendCases) {
        assert.throws(attempt, (e) => e instanceof ErrorClass && pattern.test(e.message), String(pattern));
      }
      assert.not.ok(open.transport.isClosing(), 'refused sends leave the endpoint open');
      open.transport.close();
      connected.transport.close();
    }),
  );

  udp.run();
}

// The lying selector is the selector's addon (Node; not Deno's or Bun's Node-API).
const queued = suite('datagram endpoints: a datagram the system could not take yet');

if (SELECTOR)
  queued('waits in the queue as a copy: the caller changing its array changes nothing sent', async () => {
    const loop = await createLoop({ backend: LYING });
    try {
      await loop.runUntilComplete(async () => {
        const hub = await loop.createDatagramEndpoint(() => new Recorder(), { localAddress: { port: 0 } });
        const { transport } = await loop.createDatagramEndpoint(() => new Recorder(), {
          remoteAddress: hub.transport.localAddress,
        });
        const buffer = new Uint8Array(Buffer.from('queued'));
        lies.busySends = 1;
        transport.sendto(buffer);
        assert.is(transport.writeBufferSize(), 6, 'queued: the system said EAGAIN');
        buffer.fill(0x3f);
        transport.sendto(buffer);
        await until(loop, () => hub.protocol.datagrams.length === 2, 'both datagrams, once writable');
        assert.equal(
          hub.protocol.datagrams.map((d) => d.data),
          ['queued', '??????'],
        );
        assert.is(transport.writeBufferSize(), 0);
        transport.close();
        hub.transport.close();
      });
    } finally {
      lies.busySends = 0;
      await loop.close();
    }
  });

queued.run();

const unsupported = suite('datagram endpoints where there are none');

unsupported('a clock-only backend refuses with NotSupportedError', async () => {
  const loop = await createLoop({ backend: './test/fixtures/backends.mjs:clockOnly' });
  try {
    const error = await loop.runUntilComplete(() =>
      loop.createDatagramEndpoint(() => ({}), { localAddress: { port: 0 } }).catch((e) => e),
    );
    assert.instance(error, NotSupportedError);
  } finally {
    await loop.close();
  }
});

unsupported.run();
