// The WASI host from the outside: the echo server and client
// (rust-core/wasi/echo-server, echo-client, each composed with the imports
// component and the core) under `wasmtime run -S inherit-network`, against
// Node clients and a Node server; then the wasmloop-wasi crate's own checks
// (rust-core/wasi/checks). `make test-wasi` runs it with WASMTIME,
// WASI_ECHO_SERVER, WASI_ECHO_CLIENT and WASI_CHECKS set.
import { suite } from '../../harness.mjs';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { coreModules, nestedComponents } from '../../../rust-core/wasi/nested.mjs';
import { execute } from '../process.mjs';
import { echoOnce, runEchoClient, startEchoServer, startNodeEchoServer } from './echo.mjs';

const { WASMTIME: wasmtime, WASI_ECHO_SERVER: component, WASI_ECHO_CLIENT: client, WASI_CHECKS: checks } = process.env;
if (!wasmtime || !component || !client || !checks) {
  throw new Error(
    'WASMTIME, WASI_ECHO_SERVER, WASI_ECHO_CLIENT and WASI_CHECKS are not set; run this through `make test-wasi`',
  );
}

const MiB = 1 << 20;
// wasmtime compiles each component it runs (seconds; many more on a loaded
// machine, unless its cache has it): the limit against a hang is long.
const echo = suite('wasi: TCP under wasmtime run -S inherit-network', {}, { timeLimitMs: 120_000 });

echo('echoes 1 MiB on each of 4 connections at once, byte for byte, then stops cleanly when stdin ends', async () => {
  const server = await startEchoServer({ wasmtime, component });
  try {
    const echoes = await Promise.all([1, 2, 3, 4].map(() => echoOnce({ ...server, bytes: MiB })));
    for (const { sent, received } of echoes) {
      assert.is(received.length, MiB);
      assert.ok(sent.equals(received), 'the bytes came back unchanged and in order');
    }
  } finally {
    const { code, signal, stopped, stderr } = await server.stop();
    assert.is(signal, null, stderr);
    assert.is(code, 0, stderr);
    assert.equal(stopped, { stopped: true, connections: 4, bytes: 4 * MiB });
  }
});

echo(
  'connections come and go: one that sends nothing, one closed by the client mid-stream, then one that echoes',
  async () => {
    const server = await startEchoServer({ wasmtime, component });
    try {
      const empty = await echoOnce({ ...server, bytes: 0 });
      assert.is(empty.received.length, 0, 'an empty stream is echoed as one, and ended');
      // A client that writes and goes away without reading: the server must
      // survive the reset and go on serving.
      await new Promise((resolve, reject) => {
        const socket = connect({ host: server.host, port: server.port }, () => {
          socket.write(Buffer.alloc(256 * 1024, 7), () => {
            socket.resetAndDestroy();
            resolve();
          });
        });
        socket.on('error', reject);
      });
      const after = await echoOnce({ ...server, bytes: 64 * 1024 });
      assert.ok(after.sent.equals(after.received));
    } finally {
      const { code, stopped, stderr } = await server.stop();
      assert.is(code, 0, stderr);
      assert.is(stopped?.stopped, true, 'it printed its last line');
    }
  },
);

echo('reports the core it was composed with, and the file it runs nests those very bytes', async () => {
  const server = await startEchoServer({ wasmtime, component });
  const { code, stderr } = await server.stop();
  assert.is(code, 0, stderr);
  const core = createHash('sha256').update(readFileSync('build/core.component.wasm')).digest('hex');
  assert.is(server.core, core, 'the sha256 the build embedded is that of build/core.component.wasm');
  const nested = nestedComponents(readFileSync(component)).find((c) => c.sha256 === server.core);
  assert.ok(nested, 'the composed command nests a component with that sha256');
  // What wasmtime compiles for the core: the same core modules jco
  // extracted for the JavaScript hosts (make's ts-host/src/generated).
  const sha = (file) =>
    createHash('sha256')
      .update(readFileSync(`ts-host/src/generated/${file}`))
      .digest('hex');
  assert.equal(
    coreModules(nested.bytes).map((m) => m.sha256),
    ['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'].map(sha),
  );
});

echo('the client: 4 connections at once, 1 MiB each, to a Node echo server, come back intact', async () => {
  const server = await startNodeEchoServer();
  try {
    const run = await runEchoClient({ wasmtime, component: client, ...server, connections: 4, bytes: MiB });
    assert.is(run.code, 0, run.stderr);
    assert.equal(run.report, { connections: 4, bytes: MiB, intact: 4 });
  } finally {
    await server.close();
  }
});

echo('the client and the server, both on wasmtime: 8 connections of 256 KiB', async () => {
  const server = await startEchoServer({ wasmtime, component });
  let run;
  try {
    run = await runEchoClient({
      wasmtime,
      component: client,
      host: server.host,
      port: server.port,
      connections: 8,
      bytes: 256 * 1024,
    });
  } finally {
    const { code, stopped, stderr } = await server.stop();
    assert.is(code, 0, stderr);
    assert.equal(stopped, { stopped: true, connections: 8, bytes: 8 * 256 * 1024 });
  }
  assert.is(run.code, 0, run.stderr);
  assert.equal(run.report, { connections: 8, bytes: 256 * 1024, intact: 8 });
});

echo('over IPv6 (::1): Node clients and the echo client through the echo server', async () => {
  const server = await startEchoServer({ wasmtime, component, host: '::1' });
  let run;
  try {
    assert.is(server.host, '::1');
    const echoes = await Promise.all([1, 2].map(() => echoOnce({ ...server, bytes: 256 * 1024 })));
    for (const { sent, received } of echoes) assert.ok(sent.equals(received));
    run = await runEchoClient({
      wasmtime,
      component: client,
      host: '::1',
      port: server.port,
      connections: 2,
      bytes: 256 * 1024,
    });
  } finally {
    const { code, stopped, stderr } = await server.stop();
    assert.is(code, 0, stderr);
    assert.equal(stopped, { stopped: true, connections: 4, bytes: 4 * 256 * 1024 });
  }
  assert.is(run.code, 0, run.stderr);
  assert.equal(run.report, { connections: 2, bytes: 256 * 1024, intact: 2 });
});

echo('the client reports a refused connection as an error', async () => {
  const server = await startNodeEchoServer();
  await server.close(); // a port nothing listens on any more
  const run = await runEchoClient({ wasmtime, component: client, ...server, connections: 1, bytes: 16 });
  assert.is.not(run.code, 0);
  assert.match(run.stderr, /connect to 127\.0\.0\.1:\d+: wasi:sockets: connection-refused/);
  assert.equal(run.report, { connections: 1, bytes: 16, intact: 0 });
});

echo('refuses to listen without -S inherit-network, saying why', async () => {
  const run = await execute(wasmtime, ['run', component, '--port', '0']);
  assert.is.not(run.code, 0);
  assert.match(run.stderr, /listen on 127\.0\.0\.1:0: .*(access-denied|permission)/i);
});

echo.run();

const crate = suite('wasi: the wasmloop-wasi crate (rust-core/wasi/checks)', {}, { timeLimitMs: 120_000 });

crate('run ends, watchers, virtual time, close, abandoned connects, drop order: every check passes', async () => {
  const run = await execute(wasmtime, ['run', '-S', 'inherit-network', checks]);
  assert.is(run.code, 0, run.stderr);
  const { checks: results } = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.equal(
    results.map((c) => c.name),
    [
      'would-wait-forever',
      'stopped-before-the-future',
      'level-triggered-watch',
      'virtual-time-jumps',
      'close-drops-callbacks',
      'connect-abandoned',
      'drop-order',
    ],
  );
  for (const check of results) assert.ok(check.pass, `${check.name}: ${check.detail}`);
});

crate('a second loop at once panics, and the panic says why on stderr', async () => {
  const run = await execute(wasmtime, ['run', checks, '--two-loops']);
  assert.is.not(run.code, 0);
  assert.match(run.stderr, /panic: [^\n]*\n?wasmloop-wasi: one event loop at a time/);
});

crate.run();
