// TLS on every backend with a network (io/tls*.ts): the streams API over
// node:tls, layered on the loop's transports. Bytes both ways, byte-exact;
// certificates and host names verified by default, each failure a TlsError
// naming it; ALPN; client certificates; a peer that drops mid-handshake;
// the handshake's time limit on the loop's clock; nothing leaked.
import { readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { ConnectionClosedError, TlsError, createLoop } from '../ts-host/dist/index.js';
import { virtualBackends } from './fixtures/backends.mjs';
import { IO_BACKENDS, backendLabel, unlessHostBug } from './helpers.mjs';
import { connectionsClosed, descriptorsBack, outcome, until, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const SERVER_TLS = { key: certs.server.key, cert: certs.server.cert };
const CLIENT_TLS = { ca: certs.ca.cert };
/** The virtual backend, made where this file can count its network's descriptors. */
const COUNTED_VIRTUAL = `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:countedVirtual`;

function openDescriptors(spec) {
  if (spec === COUNTED_VIRTUAL) return virtualBackends[virtualBackends.length - 1].openDescriptors();
  return readdirSync('/proc/self/fd').length;
}

async function onLoop(backend, fn) {
  const spec = backend === 'virtual' ? COUNTED_VIRTUAL : backend;
  const loop = await createLoop({ backend: spec });
  try {
    return await loop.runUntilComplete(() => fn(loop, spec));
  } finally {
    await loop.close();
  }
}

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
/** `n` bytes that are not all alike. */
const payload = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 12)) & 0xff);

async function readAll(conn) {
  const parts = [];
  for await (const chunk of conn) parts.push(chunk);
  return Buffer.concat(parts);
}

/** An echo server with TLS `tls` (default: the server certificate). */
function echoServer(loop, tls = SERVER_TLS, extra = {}) {
  return loop.createServer(
    async (conn) => {
      for await (const chunk of conn) await conn.write(chunk);
      await conn.end();
    },
    { port: 0, tls, ...extra },
  );
}

/** What a TLS connect to `port` with `tls` fails with (it must fail). */
async function connectFailure(loop, port, tls, host = '127.0.0.1') {
  const result = await within(outcome(loop.createConnection({ host, port, tls })), 'the connect');
  if (result.value !== undefined) {
    result.value.close();
    assert.unreachable('the connect succeeded');
  }
  return result.error;
}

for (const backend of process.env.TLS_BACKEND ? [process.env.TLS_BACKEND] : IO_BACKENDS) {
  const label = backendLabel(backend);
  const test = suite(`tls streams: ${label}`);

  unlessHostBug(
    test,
    ['tls paused end', 'tls server half-close'],
    'echo 1 MB byte-exact both ways; what was negotiated is on conn.tls',
    () =>
      onLoop(backend, async (loop) => {
        const server = await echoServer(loop);
        const { port } = server.address();
        const conn = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
        assert.is(conn.tls.version, 'TLSv1.3');
        assert.ok(conn.tls.authorized);
        assert.is(conn.tls.peerCertificate.subject.CN, 'localhost');
        assert.match(conn.tls.peerCertificate.subjectAltName, /IP Address:127\.0\.0\.1/);
        const data = payload(1024 * 1024);
        const [, echoed] = await Promise.all([
          (async () => {
            for (let at = 0; at < data.length; at += 100_000) await conn.write(data.subarray(at, at + 100_000));
            await conn.end();
          })(),
          readAll(conn),
        ]);
        assert.is(echoed.length, data.length);
        assert.is(sha(echoed), sha(data));
        await within(server.close(), 'server.close()');
      }),
  );

  test("tls: true checks against the host's roots: a private CA is not trusted", () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop);
      const error = await connectFailure(loop, server.address().port, true);
      assert.instance(error, TlsError);
      assert.is(error.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      assert.match(error.message, /certificate failed verification: unable to verify the first certificate/);
      assert.ok(error.cause instanceof Error);
      await within(server.close(), 'server.close()');
    }));

  test('an untrusted (self-signed) certificate is a TlsError', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop, { key: certs.selfSigned.key, cert: certs.selfSigned.cert });
      const error = await connectFailure(loop, server.address().port, CLIENT_TLS, 'localhost');
      assert.instance(error, TlsError);
      assert.is(error.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      assert.match(error.message, /self[- ]signed certificate/);
      await within(server.close(), 'server.close()');
    }));

  unlessHostBug(test, 'tls expired code', 'an expired certificate is a TlsError "certificate has expired"', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop, { key: certs.expired.key, cert: certs.expired.cert });
      const error = await connectFailure(loop, server.address().port, CLIENT_TLS);
      assert.instance(error, TlsError);
      assert.is(error.code, 'CERT_HAS_EXPIRED');
      assert.match(error.message, /certificate has expired/);
      await within(server.close(), 'server.close()');
    }),
  );

  test('a wrong host name: "hostname mismatch" naming both; servername overrides the host', () =>
    onLoop(backend, async (loop) => {
      const server = await echoServer(loop, { key: certs.otherName.key, cert: certs.otherName.cert });
      const { port } = server.address();
      const error = await connectFailure(loop, port, CLIENT_TLS);
      assert.instance(error, TlsError);
      assert.is(error.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      assert.match(error.message, /hostname mismatch: cert is for DNS:example\.com, connected to 127\.0\.0\.1/);
      const conn = await loop.createConnection({
        host: '127.0.0.1',
        port,
        tls: { ...CLIENT_TLS, servername: 'example.com' },
      });
      assert.is(conn.tls.servername, 'example.com');
      await conn.write('ok');
      assert.is(Buffer.from(await conn.readExactly(2)).toString(), 'ok');
      conn.close();
      // rejectUnauthorized: false (unsafe) takes it anyway, and says why it was not authorized.
      const unsafe = await loop.createConnection({ host: '127.0.0.1', port, tls: { rejectUnauthorized: false } });
      assert.is(unsafe.tls.authorized, false);
      assert.ok(unsafe.tls.authorizationError);
      unsafe.close();
      await within(server.close(), 'server.close()');
    }));

  test('ALPN: the server picks from what the client offers', () =>
    onLoop(backend, async (loop) => {
      let serverSaw = null;
      const server = await loop.createServer(
        async (conn) => {
          serverSaw = conn.tls.alpnProtocol;
          await conn.end();
        },
        { port: 0, tls: { ...SERVER_TLS, alpnProtocols: ['h2', 'http/1.1'] } },
      );
      const { port } = server.address();
      const conn = await loop.createConnection({
        host: 'localhost',
        port,
        tls: { ...CLIENT_TLS, alpnProtocols: ['http/1.1'] },
      });
      assert.is(conn.tls.alpnProtocol, 'http/1.1');
      assert.is(await conn.read(), null);
      assert.is(serverSaw, 'http/1.1');
      conn.close();
      const none = await loop.createConnection({ host: 'localhost', port, tls: CLIENT_TLS });
      assert.is(none.tls.alpnProtocol, null);
      none.close();
      await within(server.close(), 'server.close()');
    }));

  test('client certificates: requested, verified, refused when missing or untrusted', () =>
    onLoop(backend, async (loop) => {
      let peer = null;
      let handled = 0;
      const server = await loop.createServer(
        async (conn) => {
          handled++;
          peer = conn.tls.peerCertificate?.subject.CN ?? null;
          await conn.write('hello');
          await conn.end();
        },
        { port: 0, tls: { ...SERVER_TLS, ca: certs.clientCa.cert, requestCert: true } },
      );
      const { port } = server.address();
      const conn = await loop.createConnection({
        host: '127.0.0.1',
        port,
        tls: { ...CLIENT_TLS, cert: certs.client.cert, key: certs.client.key },
      });
      assert.is(Buffer.from(await readAll(conn)).toString(), 'hello');
      assert.is(peer, 'client');
      // Without a certificate, and with one the server's CA did not sign. In
      // TLS 1.3 the client's handshake is done before the server refuses:
      // the client reads the refusal (Bun sends an alert) or the end of the
      // stream; the handler never runs.
      for (const tls of [CLIENT_TLS, { ...CLIENT_TLS, cert: certs.selfSigned.cert, key: certs.selfSigned.key }]) {
        const refused = await within(
          outcome(
            (async () => {
              const c = await loop.createConnection({ host: '127.0.0.1', port, tls });
              return readAll(c);
            })(),
          ),
          'the refused connection',
        );
        if (refused.error === undefined) assert.is(refused.value.length, 0);
        else assert.instance(refused.error, TlsError);
      }
      await connectionsClosed(loop, server);
      assert.is(handled, 1);
      await within(server.close(), 'server.close()');
    }));

  test('a peer that drops mid-handshake: the connect rejects with a TlsError, the server goes on', () =>
    onLoop(backend, async (loop) => {
      // A plain server that reads the ClientHello and hangs up.
      const dropper = await loop.createServer(
        async (conn) => {
          await conn.read();
          conn.close();
        },
        { port: 0 },
      );
      const error = await connectFailure(loop, dropper.address().port, CLIENT_TLS);
      assert.instance(error, TlsError);
      assert.match(error.message, /handshake: peer closed the connection/);
      assert.is(error.code, 'ECONNRESET');
      await within(dropper.close(), 'dropper.close()');
      // A TLS server whose client sends half a ClientHello and hangs up.
      const server = await echoServer(loop);
      const { port } = server.address();
      const plain = await loop.createConnection({ host: '127.0.0.1', port });
      await plain.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      plain.close();
      await until(loop, () => server.connections === 0, 'the half handshake closed');
      const conn = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
      await conn.write('still serving');
      assert.is(Buffer.from(await conn.readExactly(13)).toString(), 'still serving');
      conn.close();
      await within(server.close(), 'server.close()');
    }));

  test('a handshake that does not finish fails after handshakeTimeoutMs of loop time', () =>
    onLoop(backend, async (loop) => {
      // A plain server that never answers.
      const silent = await loop.createServer((conn) => conn.read().then(() => loop.sleep(60_000)), { port: 0 });
      const error = await connectFailure(loop, silent.address().port, { ...CLIENT_TLS, handshakeTimeoutMs: 200 });
      assert.instance(error, TlsError);
      assert.is(error.code, 'ETIMEDOUT');
      assert.match(error.message, /handshake: timed out after 200 ms/);
      silent.abortClients();
      await within(silent.close(), 'silent.close()');
    }));

  test('a pending read settles when the peer closes, when we close, and on closeClients', () =>
    onLoop(backend, async (loop) => {
      const conns = [];
      const server = await loop.createServer(
        (conn) => {
          conns.push(conn);
          return conn.read().catch((e) => e);
        },
        { port: 0, tls: SERVER_TLS },
      );
      const { port } = server.address();
      const a = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
      const pending = outcome(a.read());
      a.close();
      assert.instance((await within(pending, 'the read')).error, ConnectionClosedError);
      const b = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
      await until(loop, () => conns.length === 2, 'the server has both');
      const bRead = within(b.read(), 'b.read');
      server.closeClients();
      // close_notify, then the end of the stream.
      assert.is(await bRead, null);
      b.close();
      await within(server.close(), 'server.close()');
    }));

  unlessHostBug(
    test,
    'tls server half-close',
    '200 TLS connections leave descriptors, watchers and completions where they were',
    () =>
      onLoop(backend, async (loop, spec) => {
        await loop.sleep(1);
        const stats = () => ({ watchers: loop.stats().watchers, completionsPending: loop.stats().completionsPending });
        const baseline = { fds: openDescriptors(spec), ...stats() };
        const server = await echoServer(loop);
        const { port } = server.address();
        for (let done = 0; done < 200; done += 20) {
          await Promise.all(
            Array.from({ length: 20 }, async () => {
              const c = await loop.createConnection({ host: '127.0.0.1', port, tls: CLIENT_TLS });
              await c.write('ping');
              await c.end();
              assert.is(Buffer.from(await readAll(c)).toString(), 'ping');
            }),
          );
        }
        await connectionsClosed(loop, server);
        await within(server.close(), 'server.close()');
        await descriptorsBack(loop, () => openDescriptors(spec), baseline.fds);
        assert.equal(stats(), { watchers: baseline.watchers, completionsPending: baseline.completionsPending });
      }),
    // 200 handshakes: seconds of CPU, many more on a loaded machine.
    { timeLimitMs: 120_000 },
  );

  test.run();
}
