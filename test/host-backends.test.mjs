// Which completion implementation each host gets: its own sockets on Deno
// and Bun, the addon on Node, node:net by name anywhere; and each host's
// own implementation refuses to start elsewhere, saying why.
import { test } from './harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddressInUseError, BackendError, NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { HOST, NET_COMPLETION, hostCommand } from './helpers.mjs';

const module = (file, name) => `${fileURLToPath(new URL(`../ts-host/dist/backends/${file}`, import.meta.url))}:${name}`;
const DENO = module('completion-deno.js', 'createDenoCompletionBackend');
const BUN = module('completion-bun.js', 'createBunCompletionBackend');
const OWN = { node: 'native', deno: 'deno', bun: 'bun' };

/** What loop.backend is for `spec`, or the error creating it. */
async function implementationOf(spec) {
  try {
    const loop = await createLoop({ backend: spec });
    const result = { backend: loop.backend };
    await loop.close();
    return result;
  } catch (error) {
    return { error };
  }
}

test(`auto and 'completion' on ${HOST}: completion on the host's own I/O where selector cannot start`, async () => {
  const { createCompletionBackend } = await import('../ts-host/dist/index.js');
  const backend = createCompletionBackend();
  try {
    assert.is(backend.implementation, OWN[HOST]);
  } finally {
    backend.close();
  }
  const auto = await implementationOf('auto');
  assert.is(auto.backend, HOST === 'node' ? 'selector' : 'completion');
});

test(`the other hosts' implementations refuse to start on ${HOST}, naming their host`, async () => {
  for (const [host, spec] of [
    ['deno', DENO],
    ['bun', BUN],
  ]) {
    const result = await implementationOf(spec);
    if (host === HOST) {
      assert.is(result.error, undefined, String(result.error));
      assert.is(result.backend, 'completion');
    } else {
      assert.instance(result.error, BackendError);
      assert.match(result.error.message, new RegExp(`needs ${host === 'deno' ? 'Deno' : 'Bun'}\\.listen`));
    }
  }
});

test(`node:net stays selectable by name on ${HOST}`, async () => {
  const { createNetCompletionBackend } = await import('../ts-host/dist/index.js');
  const backend = createNetCompletionBackend();
  assert.is(backend.implementation, 'node:net');
  backend.close();
  const result = await implementationOf(NET_COMPLETION);
  assert.is(result.backend, 'completion');
});

// ------------------------------------------------ listen options on the host's own sockets

/** `fn(loop)` in a run of a fresh loop on the host's own completion backend. */
async function onOwnCompletion(fn) {
  const loop = await createLoop({ backend: 'completion' });
  try {
    return await loop.runUntilComplete(() => fn(loop));
  } finally {
    await loop.close();
  }
}

/** The queue length the kernel keeps for a listening socket (what listen(2) was given, capped), as `ss` reports it. */
function listenQueue(address) {
  const args = address.family === 'unix' ? ['-lxH', 'src', address.path] : ['-ltnH', 'sport', '=', `:${address.port}`];
  const line = execFileSync('ss', args, { encoding: 'utf8' }).trim();
  assert.ok(line !== '', `ss lists the listener at ${address.path ?? address.port}`);
  const columns = line.split(/\s+/);
  // TCP: State Recv-Q Send-Q ...; Unix: Netid State Recv-Q Send-Q ...
  return Number(columns[address.family === 'unix' ? 3 : 2]);
}

const SOMAXCONN = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));

/**
 * The queue each host's own completion backend gives a listener, by
 * transport and backlog asked ('default': none given), or 'refused'
 * (NotSupportedError). Bun.listen takes no backlog and queues 512; Deno
 * queues 1024 on a Unix socket whatever it is asked (docs/backends.md).
 */
const QUEUES = {
  node: { tcp: { 7: 7, 2048: 2048, default: 511 }, unix: { 7: 7, 2048: 2048, default: 511 } },
  deno: { tcp: { 7: 7, 2048: 2048, default: 511 }, unix: { 7: 'refused', 2048: 1024, default: 1024 } },
  bun: { tcp: { 7: 'refused', 2048: 512, default: 512 }, unix: { 7: 'refused', 2048: 512, default: 512 } },
};

test(`completion on ${HOST}: backlog reaches listen(2), capped where the host fixes the queue, refused below it`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-backlog-'));
  try {
    await onOwnCompletion(async (loop) => {
      for (const transport of ['tcp', 'unix']) {
        for (const [asked, expected] of Object.entries(QUEUES[HOST][transport])) {
          const options = {
            ...(transport === 'tcp' ? { port: 0 } : { path: join(dir, `${asked}.sock`) }),
            ...(asked === 'default' ? {} : { backlog: Number(asked) }),
          };
          const what = `${transport}, backlog ${asked}`;
          let server;
          try {
            server = await loop.createServer(() => undefined, options);
          } catch (error) {
            assert.is(expected, 'refused', `${what}: ${error}`);
            assert.instance(error, NotSupportedError, what);
            assert.match(error.message, `backlog ${asked}`);
            assert.match(error.message, HOST === 'deno' ? 'on Deno' : 'on Bun');
            continue;
          }
          try {
            assert.is.not(expected, 'refused', `${what}: listens`);
            assert.is(listenQueue(server.address()), Math.min(expected, SOMAXCONN), what);
          } finally {
            await server.close();
          }
        }
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Listens on a port with reusePort, then again with it and once without: what each second listen did. */
async function sharePort(loop) {
  const first = await loop.createServer(() => undefined, { port: 0, reusePort: true });
  const port = first.address().port;
  const attempt = (options) =>
    loop
      .createServer(() => undefined, { port, ...options })
      .then(
        async (server) => {
          await server.close();
          return 'listening';
        },
        (error) => error,
      );
  try {
    return { shared: await attempt({ reusePort: true }), exclusive: await attempt({}) };
  } finally {
    await first.close();
  }
}

test(`completion on ${HOST}: reusePort shares a port (SO_REUSEPORT)${HOST === 'deno' ? ' under --unstable-net, and is refused without it' : ''}`, async () => {
  if (HOST === 'deno') {
    // These suites run without the flag: Deno.listen would end the process, so the backend refuses.
    const { shared } = await onOwnCompletion(sharePort).catch((error) => ({ shared: error }));
    assert.instance(shared, NotSupportedError);
    assert.match(shared.message, 'reusePort');
    assert.match(shared.message, 'on Deno without --unstable-net');
    const [command, args] = hostCommand(fileURLToPath(new URL('./fixtures/reuse-port.mjs', import.meta.url)));
    const flagged = JSON.parse(
      execFileSync(command, [args[0], '--unstable-net', ...args.slice(1)], { encoding: 'utf8' }),
    );
    assert.equal(flagged, { backend: 'completion', shared: 'listening', exclusive: 'AddressInUseError' });
    return;
  }
  const { shared, exclusive } = await onOwnCompletion(sharePort);
  assert.is(shared, 'listening', `a second listener with reusePort: ${shared}`);
  assert.instance(exclusive, AddressInUseError, 'a listener without it is refused the port');
});

// ------------------------------------------------ bytes on the host's own sockets

/** A protocol server on the host's own completion backend that hands each connection's chunks to `received`. */
async function collectingServer(loop, received) {
  return loop.createProtocolServer(
    () => ({
      dataReceived: (data) => received.push(data),
    }),
    { port: 0 },
  );
}

test(`completion on ${HOST}: each chunk received is a Uint8Array over an ArrayBuffer of its own, exactly its size`, () =>
  onOwnCompletion(async (loop) => {
    const received = [];
    const server = await collectingServer(loop, received);
    const client = await loop.createConnection({ port: server.address().port });
    let sent = 0;
    for (const size of [1, 64, 1000, 5000]) {
      await client.write(new Uint8Array(size).fill(size & 0xff));
      sent += size;
      while (received.reduce((n, c) => n + c.length, 0) < sent) await loop.sleep(1);
    }
    for (const chunk of received) {
      assert.is(Object.getPrototypeOf(chunk), Uint8Array.prototype, 'a plain Uint8Array');
      assert.is(chunk.byteOffset, 0);
      assert.is(chunk.buffer.byteLength, chunk.length, 'its buffer holds that chunk alone');
    }
    client.close();
    server.abortClients();
    await server.close();
  }));

test(`completion on ${HOST}: a write carries the bytes it was given, whatever the program does with its array after`, () =>
  onOwnCompletion(async (loop) => {
    const received = [];
    const server = await collectingServer(loop, received);
    const clients = [];
    const transports = [];
    for (let c = 0; c < 8; c++) {
      clients.push(
        await loop.createProtocolConnection(
          () => ({
            connectionMade: (t) => transports.push(t),
          }),
          { port: server.address().port },
        ),
      );
    }
    // Small writes from several connections, each array overwritten at
    // once: 8 x 300 x 100 bytes, past the size of any one buffer the host
    // may copy them into.
    const array = new Uint8Array(100);
    let expected = 0;
    for (let round = 0; round < 300; round++) {
      for (const t of transports) {
        array.fill(expected % 200);
        const value = array[0];
        t.write(array);
        array.fill(0xee);
        expected += 1;
        assert.is.not(value, 0xee);
      }
      if (round % 50 === 0) await loop.sleep(0);
    }
    while (received.reduce((n, c) => n + c.length, 0) < expected * 100) await loop.sleep(1);
    const bytes = new Uint8Array(expected * 100);
    let at = 0;
    for (const chunk of received) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    assert.not.ok(bytes.includes(0xee), 'no byte written after the write');
    for (const t of transports) t.close();
    server.abortClients();
    await server.close();
  }));

test.run();
