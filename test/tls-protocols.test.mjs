// TLS with asyncio's protocols (createProtocolServer/createProtocolConnection
// with `tls`, as asyncio's ssl=), on every backend with a network:
// connectionMade after the handshake, 1 MB echoed byte-exact with flow
// control, close_notify on writeEof, connectionLost once, a failed
// handshake rejects the connect.
import { createHash } from 'node:crypto';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { TlsError } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop, unlessHostBug } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const SERVER_TLS = { key: certs.server.key, cert: certs.server.cert, alpnProtocols: ['echo'] };
const CLIENT_TLS = { ca: certs.ca.cert, alpnProtocols: ['echo'] };
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const payload = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 12)) & 0xff);

/** An echo protocol that pauses its reading while its transport's buffer is full. */
function echoProtocol(events) {
  let transport;
  return {
    connectionMade(t) {
      transport = t;
      events?.push(`made:${t.tls.alpnProtocol}`);
    },
    dataReceived(data) {
      transport.write(data);
    },
    pauseWriting() {
      transport.pauseReading();
    },
    resumeWriting() {
      transport.resumeReading();
    },
    eofReceived() {
      transport.writeEof();
      return true;
    },
    connectionLost(error) {
      events?.push(`lost:${error === null ? 'null' : error.name}`);
    },
  };
}

for (const backend of process.env.TLS_BACKEND ? [process.env.TLS_BACKEND] : IO_BACKENDS) {
  const test = suite(`tls protocols: ${backendLabel(backend)}`);

  unlessHostBug(
    test,
    ['tls paused end', 'tls server half-close'],
    'echo 1 MB byte-exact; connectionMade after the handshake; writeEof is close_notify',
    () =>
      onLoop(backend, async (loop) => {
        const serverEvents = [];
        const server = await loop.createProtocolServer(() => echoProtocol(serverEvents), { port: 0, tls: SERVER_TLS });
        const { port } = server.address();
        const data = payload(1024 * 1024);
        const parts = [];
        let ended;
        const endedAt = new Promise((resolve) => (ended = resolve));
        let lost;
        const lostWith = new Promise((resolve) => (lost = resolve));
        const { transport } = await loop.createProtocolConnection(
          () => ({
            connectionMade(t) {
              assert.is(t.tls.version, 'TLSv1.3');
            },
            dataReceived: (chunk) => parts.push(chunk),
            eofReceived: () => {
              ended();
            },
            connectionLost: (error) => lost(error),
          }),
          { host: 'localhost', port, tls: CLIENT_TLS },
        );
        assert.is(transport.tls.alpnProtocol, 'echo');
        for (let at = 0; at < data.length; at += 64 * 1024) transport.write(data.subarray(at, at + 64 * 1024));
        transport.writeEof();
        await within(endedAt, "the echo's end");
        assert.is(await within(lostWith, 'connectionLost'), null);
        const echoed = Buffer.concat(parts);
        assert.is(echoed.length, data.length);
        assert.is(sha(echoed), sha(data));
        await until(loop, () => serverEvents.length === 2, "the server's connectionLost");
        assert.equal(serverEvents, ['made:echo', 'lost:null']);
        await within(server.close(), 'server.close()');
      }),
  );

  test('a failed handshake rejects the connect; the factory is never called', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createProtocolServer(() => echoProtocol(), {
        port: 0,
        tls: { key: certs.selfSigned.key, cert: certs.selfSigned.cert },
      });
      let made = 0;
      const result = await within(
        outcome(
          loop.createProtocolConnection(
            () => {
              made++;
              return {};
            },
            { host: '127.0.0.1', port: server.address().port, tls: { ca: certs.ca.cert } },
          ),
        ),
        'the connect',
      );
      assert.instance(result.error, TlsError);
      assert.is(result.error.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      assert.is(made, 0);
      await until(loop, () => server.connections === 0, 'the server let go');
      await within(server.close(), 'server.close()');
    }));

  test('abortClients drops sessions: connectionLost runs once on each side', () =>
    onLoop(backend, async (loop) => {
      const serverEvents = [];
      const server = await loop.createProtocolServer(() => echoProtocol(serverEvents), { port: 0, tls: SERVER_TLS });
      const clientEvents = [];
      await loop.createProtocolConnection(() => echoProtocol(clientEvents), {
        host: '127.0.0.1',
        port: server.address().port,
        tls: CLIENT_TLS,
      });
      await until(loop, () => serverEvents.length === 1, "the server's connectionMade");
      server.abortClients();
      await until(loop, () => clientEvents.length === 2 && serverEvents.length === 2, 'both lost');
      assert.is(serverEvents[1], 'lost:null');
      await within(server.close(), 'server.close()');
    }));

  test.run();
}
