// STARTTLS on every backend with a network: a plain exchange, then
// `conn.startTls()` (streams) or `loop.startTls()` (protocols) on both
// sides. The old object refuses further use; a ClientHello that arrived
// behind the STARTTLS line (buffered by the framed read) is not lost; a
// failed handshake, a peer that drops and a close during the handshake
// settle every promise; connections and descriptors go back to zero.
import { readdirSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { ConnectionClosedError, TlsError, WasmloopError } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';
import { connectionsClosed, descriptorsBack, outcome, until, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const SERVER_TLS = { serverSide: true, key: certs.server.key, cert: certs.server.cert };
const CLIENT_TLS = { ca: certs.ca.cert };
const text = (bytes) => Buffer.from(bytes).toString();
const descriptors = () => readdirSync('/proc/self/fd').length;

/**
 * A STARTTLS server (streams): greets, waits for STARTTLS, says go ahead,
 * upgrades, then answers one line over TLS. `seen` gets what happened.
 */
function starttlsServer(loop, seen, tls = SERVER_TLS) {
  return loop.createServer(
    async (conn) => {
      await conn.write('220 ready\r\n');
      seen.command = text(await conn.readLine());
      await conn.write('220 go ahead\r\n');
      const secure = await conn.startTls(tls).catch((error) => {
        seen.error = error;
        return null;
      });
      if (secure === null) return;
      seen.old = await outcome(conn.read());
      seen.tls = secure.tls;
      seen.line = text(await secure.readLine());
      await secure.write('250 secure\r\n');
      await secure.end();
    },
    { port: 0 },
  );
}

/** A client that sends STARTTLS and its ClientHello in one write, without waiting for the go-ahead. */
async function pipelinedClient(conn) {
  let first = true;
  // The go-ahead is plaintext, before the server's TLS: read past it first.
  let goAhead = null;
  // One read of the connection at a time, however often the stream asks.
  let reading = false;
  const below = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      goAhead ??= conn.readLine().then(text);
      goAhead
        .then(() => conn.read())
        .then(
          (chunk) => {
            reading = false;
            this.push(chunk);
          },
          (error) => this.destroy(error),
        );
    },
    write(chunk, _encoding, callback) {
      const bytes = first ? Buffer.concat([Buffer.from('STARTTLS\r\n'), chunk]) : chunk;
      first = false;
      conn.write(bytes).then(() => callback(), callback);
    },
  });
  const socket = tlsConnect({ socket: below, ca: certs.ca.cert, servername: 'localhost' });
  await new Promise((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  assert.is(await goAhead, '220 go ahead\r\n');
  return socket;
}

for (const backend of process.env.TLS_BACKEND ? [process.env.TLS_BACKEND] : IO_BACKENDS) {
  const test = suite(`tls startTls: ${backendLabel(backend)}`);
  const countsDescriptors = backend !== 'virtual';

  test('streams: a plain greeting, STARTTLS, then TLS both sides; the old objects refuse', () =>
    onLoop(backend, async (loop) => {
      // Twice: the first run loads the TLS layer (and the host opens what it opens once).
      let before = descriptors();
      for (let run = 0; run < 2; run++) {
        if (run === 1) before = descriptors();
        await starttlsExchange(loop);
      }
      if (countsDescriptors) await descriptorsBack(loop, descriptors, before);
    }));

  /** One STARTTLS exchange on both sides, checked throughout; every connection closed at the end. */
  async function starttlsExchange(loop) {
    const seen = {};
    const server = await starttlsServer(loop, seen);
    const conn = await loop.createConnection({ host: '127.0.0.1', port: server.address().port });
    assert.is(text(await conn.readLine()), '220 ready\r\n');
    await conn.write('STARTTLS\r\n');
    assert.is(text(await conn.readLine()), '220 go ahead\r\n');
    const secure = await within(conn.startTls(CLIENT_TLS), 'the client startTls');
    assert.is(secure.tls.version, 'TLSv1.3');
    assert.ok(secure.tls.authorized);
    assert.is(secure.tls.peerCertificate.subject.CN, 'localhost');
    assert.is(conn.tls, null);
    // The old object refuses, naming what to use instead.
    for (const refused of [conn.read(), conn.write('x'), conn.readLine(), conn.end(), conn.startTls()]) {
      const { error } = await outcome(refused);
      assert.instance(error, WasmloopError);
      assert.match(error.message, /upgraded by startTls\(\); use the TLS connection it resolves to/);
    }
    await secure.write('EHLO\r\n');
    assert.is(text(await within(secure.readLine(), 'the reply over TLS')), '250 secure\r\n');
    assert.is(await secure.read(), null);
    assert.is(seen.command, 'STARTTLS\r\n');
    assert.is(seen.line, 'EHLO\r\n');
    assert.is(seen.tls.version, 'TLSv1.3');
    assert.instance(seen.old.error, WasmloopError);
    secure.close();
    assert.ok(conn.closed);
    await until(loop, () => server.connections === 0, 'the server connection closed');
    await within(server.close(), 'server.close()');
  }

  test('streams: a ClientHello buffered behind the STARTTLS line by readLine is not lost', () =>
    onLoop(backend, async (loop) => {
      const seen = {};
      // The client is node:tls outside the loop: on virtual time nothing holds
      // the clock for its work, so the server's handshake has no time limit.
      const server = await starttlsServer(loop, seen, { ...SERVER_TLS, handshakeTimeoutMs: Infinity });
      const conn = await loop.createConnection({ host: '127.0.0.1', port: server.address().port });
      assert.is(text(await conn.readLine()), '220 ready\r\n');
      const socket = await within(pipelinedClient(conn), 'the pipelined handshake');
      assert.is(seen.command, 'STARTTLS\r\n');
      socket.write('EHLO\r\n');
      const reply = await within(
        new Promise((resolve) => {
          let got = '';
          socket.on('data', (chunk) => {
            got += chunk;
            // The go-ahead was plaintext before TLS: the TLS reply is all that comes now.
            if (got.endsWith('\r\n')) resolve(got);
          });
        }),
        'the reply over TLS',
      );
      assert.is(reply, '250 secure\r\n');
      socket.destroy();
      conn.close();
      await until(loop, () => server.connections === 0, 'the server connection closed');
      await within(server.close(), 'server.close()');
    }));

  test('streams: a certificate the client refuses settles both sides with TlsError', () =>
    onLoop(backend, async (loop) => {
      const seen = {};
      const selfSigned = { serverSide: true, key: certs.selfSigned.key, cert: certs.selfSigned.cert };
      const server = await starttlsServer(loop, seen, selfSigned);
      const conn = await loop.createConnection({ host: '127.0.0.1', port: server.address().port });
      await conn.readLine();
      await conn.write('STARTTLS\r\n');
      await conn.readLine();
      const { error } = await within(outcome(conn.startTls(CLIENT_TLS)), 'the client startTls');
      assert.instance(error, TlsError);
      assert.is(error.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      assert.match(error.message, /^startTls: the peer's certificate failed verification/);
      await until(loop, () => seen.error !== undefined, 'the server startTls settled');
      assert.instance(seen.error, TlsError);
      assert.ok(conn.closed);
      await until(loop, () => server.connections === 0, 'the server connection closed');
      await within(server.close(), 'server.close()');
    }));

  test('streams: a peer that drops, or a close, during the handshake settles startTls', () =>
    onLoop(backend, async (loop) => {
      // A server that reads the ClientHello and hangs up.
      const dropper = await loop.createServer(
        async (conn) => {
          await conn.read();
          conn.close();
        },
        { port: 0 },
      );
      const { port } = dropper.address();
      const a = await loop.createConnection({ host: '127.0.0.1', port });
      const dropped = await within(outcome(a.startTls(CLIENT_TLS)), 'startTls with a peer that drops');
      assert.instance(dropped.error, TlsError);
      assert.is(dropped.error.code, 'ECONNRESET');
      assert.ok(a.closed);
      // Closing the old object fails the handshake it is part of.
      const silent = await loop.createServer((conn) => conn.read().then(() => loop.sleep(60_000)), { port: 0 });
      const b = await loop.createConnection({ host: '127.0.0.1', port: silent.address().port });
      const pending = outcome(b.startTls(CLIENT_TLS));
      await loop.sleep(10);
      b.close();
      const closed = await within(pending, 'startTls after close()');
      assert.instance(closed.error, ConnectionClosedError);
      assert.match(closed.error.message, /startTls: the connection was closed during the handshake/);
      assert.ok(b.closed);
      // The handshake's own time limit counts too.
      const c = await loop.createConnection({ host: '127.0.0.1', port: silent.address().port });
      const timedOut = await within(
        outcome(c.startTls({ ...CLIENT_TLS, handshakeTimeoutMs: 100 })),
        'startTls timing out',
      );
      assert.instance(timedOut.error, TlsError);
      assert.is(timedOut.error.code, 'ETIMEDOUT');
      silent.abortClients();
      await within(Promise.all([dropper.close(), silent.close()]), 'the servers closed');
    }));

  test('streams: startTls checks its options and refuses while a read is pending', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createServer((conn) => conn.read(), { port: 0 });
      const conn = await loop.createConnection({ host: '127.0.0.1', port: server.address().port });
      const noCert = await outcome(conn.startTls({ serverSide: true }));
      assert.instance(noCert.error, TypeError);
      assert.match(noCert.error.message, /startTls: tls needs a key and a cert/);
      const reading = conn.read();
      const busy = await outcome(conn.startTls(CLIENT_TLS));
      assert.instance(busy.error, WasmloopError);
      assert.match(busy.error.message, /startTls: a read is pending/);
      conn.close();
      await outcome(reading);
      const closed = await outcome(conn.startTls(CLIENT_TLS));
      assert.instance(closed.error, ConnectionClosedError);
      await within(server.close(), 'server.close()');
    }));

  test('protocols: loop.startTls on both sides; no second connectionMade; the old transport refuses', () =>
    onLoop(backend, async (loop) => {
      const serverEvents = [];
      const server = await loop.createProtocolServer(
        () => {
          let transport;
          let secure = null;
          const protocol = {
            connectionMade(t) {
              transport = t;
              serverEvents.push('made');
              t.write('220 ready\r\n');
            },
            dataReceived(data) {
              const line = text(data);
              serverEvents.push(line.trim());
              if (secure === null && line === 'STARTTLS\r\n') {
                transport.write('220 go ahead\r\n');
                secure = loop.startTls(transport, protocol, SERVER_TLS).then((t) => {
                  serverEvents.push(`tls:${t.tls.version}`);
                  return t;
                });
              } else if (line === 'EHLO\r\n') {
                secure.then((t) => {
                  t.write('250 secure\r\n');
                  t.close();
                });
              }
            },
            connectionLost: (error) => serverEvents.push(`lost:${error === null ? 'null' : error.name}`),
          };
          return protocol;
        },
        { port: 0 },
      );
      const clientEvents = [];
      let upgraded;
      const done = new Promise((resolve) => (upgraded = resolve));
      let finished;
      const lost = new Promise((resolve) => (finished = resolve));
      const client = {
        transport: null,
        connectionMade(t) {
          this.transport = t;
          clientEvents.push('made');
        },
        dataReceived(data) {
          const line = text(data);
          clientEvents.push(line.trim());
          if (line === '220 ready\r\n') this.transport.write('STARTTLS\r\n');
          else if (line === '220 go ahead\r\n') upgraded(loop.startTls(this.transport, this, CLIENT_TLS));
        },
        connectionLost: (error) => finished(error),
      };
      const { transport: plain } = await loop.createProtocolConnection(() => client, {
        host: '127.0.0.1',
        port: server.address().port,
      });
      const secure = await within(done, 'the client startTls');
      assert.is(secure.tls.version, 'TLSv1.3');
      assert.ok(secure.tls.authorized);
      assert.throws(() => plain.write('x'), /write: this connection was upgraded by startTls\(\)/);
      secure.write('EHLO\r\n');
      assert.is(await within(lost, 'connectionLost after the server closed'), null);
      assert.equal(clientEvents, ['made', '220 ready', '220 go ahead', '250 secure']);
      await until(loop, () => server.connections === 0, 'the server connection closed');
      assert.equal(serverEvents, ['made', 'STARTTLS', 'tls:TLSv1.3', 'EHLO', 'lost:null']);
      await within(server.close(), 'server.close()');
    }));

  test('protocols: a failed handshake rejects loop.startTls; closeClients reaches the TLS session', () =>
    onLoop(backend, async (loop) => {
      const upgrades = [];
      const server = await loop.createProtocolServer(
        () => {
          const protocol = {
            connectionMade(t) {
              upgrades.push(outcome(loop.startTls(t, protocol, SERVER_TLS)));
            },
            dataReceived() {},
          };
          return protocol;
        },
        { port: 0 },
      );
      const { port } = server.address();
      const plainClient = () => loop.createProtocolConnection(() => ({}), { host: '127.0.0.1', port });
      // The client trusts nothing the server has.
      const { transport: first } = await plainClient();
      const refused = await within(outcome(loop.startTls(first, {}, {})), 'a refused startTls');
      assert.instance(refused.error, TlsError);
      assert.is(refused.error.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      const serverSide = await within(upgrades[0], 'the server startTls');
      assert.ok(serverSide.error instanceof Error);
      // An upgraded connection: the server's closeClients() ends its TLS session.
      let lost;
      const lostWith = new Promise((resolve) => (lost = resolve));
      const { transport: second } = await plainClient();
      const secure = await within(
        loop.startTls(second, { eofReceived: () => false, connectionLost: lost }, CLIENT_TLS),
        'startTls',
      );
      await until(loop, () => upgrades.length === 2, 'the server upgrading');
      assert.ok((await within(upgrades[1], 'the server startTls')).value);
      server.closeClients();
      assert.is(await within(lostWith, 'connectionLost'), null);
      assert.ok(secure.isClosing());
      await connectionsClosed(loop, server);
      await within(server.close(), 'server.close()');
    }));

  test.run();
}
