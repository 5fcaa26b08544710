// An address the loop reported (server.address(), transport.localAddress,
// a datagram's sender) passed back as it is: its `family` is checked
// against the host or path beside it, on every backend with a network.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from './harness.mjs';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';

/** `attempt()`'s error (thrown or rejected), which must be a TypeError whose message matches `pattern`. */
async function refused(attempt, pattern) {
  let error = null;
  try {
    await attempt();
  } catch (e) {
    error = e;
  }
  assert.instance(error, TypeError, `${pattern}: got ${error}`);
  assert.match(error.message, pattern);
}

/** A protocol that keeps its transport and the datagrams it gets. */
function recorder() {
  const datagrams = [];
  let arrived = () => {};
  return {
    datagrams,
    next: () => new Promise((resolve) => (arrived = resolve)),
    connectionMade(transport) {
      this.transport = transport;
    },
    datagramReceived(data, addr) {
      datagrams.push({ text: Buffer.from(data).toString(), addr });
      arrived();
    },
  };
}

for (const backend of IO_BACKENDS) {
  const family = suite(`address family: ${backendLabel(backend)}`);

  family('a TCP address the loop reported connects as it is', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createServer(async (conn) => conn.write('hi'), { port: 0 });
      const address = server.address();
      assert.is(address.family, 'IPv4');
      const conn = await loop.createConnection(address);
      assert.is(Buffer.from(await conn.readExactly(2)).toString(), 'hi');
      conn.close();
      await server.close();
    }),
  );

  family("a Unix socket's reported address (empty host, port 0) connects as it is", () =>
    onLoop(backend, async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmloop-family-'));
      try {
        const server = await loop.createServer(async (conn) => conn.write('hi'), { path: join(dir, 's.sock') });
        const address = server.address();
        assert.equal(address, { host: '', port: 0, family: 'unix', path: join(dir, 's.sock') });
        const conn = await loop.createConnection(address);
        assert.is(Buffer.from(await conn.readExactly(2)).toString(), 'hi');
        conn.close();
        // Without the family, the empty host and port are a host and port given with a path.
        await refused(
          () => loop.createConnection({ ...address, family: undefined }),
          /give a path or a host and port, not both/,
        );
        await server.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );

  family("a datagram's sender and an endpoint's own address are passed back as they are", () =>
    onLoop(backend, async (loop) => {
      const server = recorder();
      await loop.createDatagramEndpoint(() => server, { localAddress: { port: 0 } });
      const client = recorder();
      // The server's reported address as the client's remote, its family included.
      await loop.createDatagramEndpoint(() => client, { remoteAddress: server.transport.localAddress });
      const got = server.next();
      client.transport.sendto('ping');
      await got;
      const { addr } = server.datagrams[0];
      assert.is(addr.family, 'IPv4');
      const answered = client.next();
      server.transport.sendto('pong', addr);
      await answered;
      assert.is(client.datagrams[0].text, 'pong');
      server.transport.close();
      client.transport.close();
    }),
  );

  family('a family that does not agree with the host or path is a TypeError naming both', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.createServer(async () => {}, { port: 0 });
      const { port } = server.address();
      const connect = (options) => () => loop.createConnection(options);
      await refused(
        connect({ host: '127.0.0.1', port, family: 'IPv6' }),
        /createConnection: family 'IPv6' does not agree with host '127\.0\.0\.1'/,
      );
      await refused(connect({ port, family: 'IPv6' }), /family 'IPv6' does not agree with host '127\.0\.0\.1'/);
      await refused(connect({ host: '::1', port, family: 'IPv4' }), /family 'IPv4' does not agree with host '::1'/);
      await refused(
        connect({ host: '127.0.0.1', port, family: 'unix' }),
        /family 'unix' does not agree with host '127\.0\.0\.1'/,
      );
      await refused(
        connect({ host: 'localhost', port, family: 'IPv4' }),
        /family 'IPv4' does not agree with host 'localhost' \(a name/,
      );
      await refused(
        connect({ path: '/tmp/wasmloop-nowhere.sock', family: 'IPv4' }),
        /family 'IPv4' does not agree with path '\/tmp\/wasmloop-nowhere\.sock'/,
      );
      await refused(
        connect({ host: '127.0.0.1', port, family: 'inet' }),
        /family must be 'IPv4', 'IPv6' or 'unix', got string "inet"/,
      );
      await refused(
        connect({ host: '127.0.0.1', port, family: 4 }),
        /family must be 'IPv4', 'IPv6' or 'unix', got number 4/,
      );
      await refused(
        () => loop.createProtocolConnection(() => ({}), { host: '127.0.0.1', port, family: 'IPv6' }),
        /createProtocolConnection: family 'IPv6' does not agree with host '127\.0\.0\.1'/,
      );

      const endpoint = (options) => () => loop.createDatagramEndpoint(() => ({}), options);
      await refused(
        endpoint({ localAddress: { port: 0, family: 'IPv6' } }),
        /localAddress\.family 'IPv6' does not agree with host '127\.0\.0\.1'/,
      );
      await refused(
        endpoint({ remoteAddress: { host: '::1', port: 9, family: 'IPv4' } }),
        /remoteAddress\.family 'IPv4' does not agree with host '::1'/,
      );
      await refused(
        endpoint({ localAddress: { host: '127.0.0.1', port: 0, family: 'unix' } }),
        /localAddress\.family 'unix' does not agree/,
      );

      const open = recorder();
      await loop.createDatagramEndpoint(() => open, { localAddress: { port: 0 } });
      await refused(
        () => open.transport.sendto('x', { host: '127.0.0.1', port: 9, family: 'IPv6' }),
        /sendto: addr\.family 'IPv6' does not agree with host '127\.0\.0\.1'/,
      );
      await refused(
        () => open.transport.sendto('x', { host: '127.0.0.1', port: 9, family: 'v4' }),
        /sendto: addr\.family must be 'IPv4', 'IPv6' or 'unix'/,
      );
      assert.is(open.transport.isClosing(), false, 'the endpoint stays open');
      open.transport.close();
      await server.close();
    }),
  );

  family.run();
}
