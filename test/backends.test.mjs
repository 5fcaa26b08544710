// Choosing a backend: 'auto', names, and 'module:function'.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { BackendError, NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { FACTORY_TIMEOUT_MS, autoOrder, resolveBackend } from '../ts-host/dist/backends/resolve.js';
import { createNetCompletionBackend } from '../ts-host/dist/backends/completion.js';
import { NET_COMPLETION, capture, countHostWaits } from './helpers.mjs';

const auto = suite("backend 'auto'");

/** Factories for the two I/O backends, each failing with its reason. */
const NO_IO_BACKEND = [
  [
    'selector',
    () => {
      throw new Error('no addon');
    },
  ],
  [
    'completion',
    () => {
      throw new Error('no net');
    },
  ],
];

auto('POSIX prefers the selector, Windows the completion backend', async () => {
  assert.equal(autoOrder('linux'), ['selector', 'completion', 'clock']);
  assert.equal(autoOrder('darwin'), ['selector', 'completion', 'clock']);
  assert.equal(autoOrder('win32'), ['completion', 'selector', 'clock']);
  assert.equal(
    autoOrder('browser'),
    ['selector', 'completion', 'clock'],
    'where no I/O backend starts, timers still run',
  );
  const onWindows = await resolveBackend('auto', { platform: 'win32' });
  assert.is(onWindows.name, 'completion');
  onWindows.close();
  const here = await resolveBackend('auto');
  assert.is(here.name, 'selector');
  here.close();
});

auto('falls back to the next backend when the preferred one cannot start, and says so', async () => {
  const logged = [];
  const real = await resolveBackend('completion');
  real.close();
  const factories = new Map([
    [
      'selector',
      () => {
        throw new Error('addon missing');
      },
    ],
    ['completion', () => resolveBackend('completion')],
  ]);
  const chosen = await resolveBackend('auto', { factories, log: (m) => logged.push(m), platform: 'linux' });
  assert.is(chosen.name, 'completion');
  assert.is(logged.length, 1);
  assert.match(logged[0], /backend 'selector' cannot start here: addon missing; trying the next one/);
  chosen.close();
});

auto('fails with every reason when no backend starts', async () => {
  const factories = new Map(NO_IO_BACKEND);
  try {
    await resolveBackend('auto', { factories, platform: 'linux' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, BackendError);
    assert.match(error.message, /no backend starts here.*'selector'.*no addon.*'completion'.*no net/);
  }
});

auto("where no I/O backend starts, 'auto' falls back to the clock: timers run, I/O says why not", async () => {
  const factories = new Map([
    ...NO_IO_BACKEND,
    ['clock', (await import('../ts-host/dist/backends/clock.js')).createClockBackend],
  ]);
  const chosen = await resolveBackend('auto', { factories, platform: 'browser' });
  assert.is(chosen.name, 'clock');
  chosen.close();
  const loop = await createLoop({ backend: 'clock' });
  assert.is(await loop.runUntilComplete(() => loop.sleep(2, 'timers work')), 'timers work');
  for (const attempt of [() => loop.createServer(() => {}, { port: 0 }), () => loop.createConnection({ port: 1 })]) {
    try {
      await attempt();
      assert.unreachable();
    } catch (error) {
      assert.match(error.message, /the 'clock' backend has no I\/O/);
    }
  }
  assert.throws(
    () => loop.addReader(0, () => {}),
    (e) => /the 'clock' backend has no readiness I\/O/.test(e.message),
  );
  await loop.close();
});

auto('createLoop reports the backend it chose', async () => {
  for (const backend of ['auto', 'selector', 'completion']) {
    const loop = await createLoop({ backend });
    assert.is(loop.backend, backend === 'auto' ? 'selector' : backend);
    await loop.close();
  }
});

auto(
  'the completion backend does its I/O natively on Node, and on node:net where asked (or where the addon cannot load)',
  async () => {
    const native = await resolveBackend('completion');
    assert.is(native.name, 'completion');
    assert.is(native.implementation, 'native');
    native.close();
    const portable = createNetCompletionBackend();
    assert.is(portable.name, 'completion');
    assert.is(portable.implementation, 'node:net');
    portable.close();
    const loop = await createLoop({ backend: NET_COMPLETION });
    assert.is(loop.backend, 'completion');
    await loop.close();
  },
);

const user = suite("backend 'module:function'");

user('loads a user backend relative to the working directory and runs on it', async () => {
  const loop = await createLoop({ backend: './examples/custom-backend.mjs:createBackend' });
  assert.is(loop.backend, 'accelerated-2x');
  // At 2x the loop asks the host to wait half of what is left of the 60 ms:
  // never more than 30 ms. (A sleep whose whole 30 ms of wall time went by
  // while its first iteration ran, on a busy machine, needs no wait: then
  // it is slept again until one shows.)
  let delays = [];
  for (let attempt = 1; delays.length === 0; attempt++) {
    const loopStart = loop.time();
    ({ delays } = await countHostWaits(() => loop.runUntilComplete(() => loop.sleep(60))));
    assert.ok(loop.time() - loopStart >= 60);
    assert.ok(Math.max(0, ...delays) <= 30, `host waits of ${delays} ms for 60 ms at 2x`);
    assert.ok(delays.length > 0 || attempt < 100, 'no sleep of 60 ms waited on a host timer');
  }
  // Its I/O is the completion backend's.
  await loop.runUntilComplete(async () => {
    const server = await loop.createServer(
      async (c) => {
        await c.write('hi');
        c.close();
      },
      { port: 0 },
    );
    const client = await loop.createConnection({ port: server.address().port });
    assert.is(Buffer.from(await client.read()).toString(), 'hi');
    client.close();
    await server.close();
  });
  await loop.close();
});

user('absolute paths, file URLs and a clock-only backend work', async () => {
  const path = new URL('./fixtures/backends.mjs', import.meta.url);
  for (const spec of [`${path.pathname}:clockOnly`, `${path.href}:clockOnly`]) {
    const loop = await createLoop({ backend: spec });
    assert.is(loop.backend, 'clock-only');
    await loop.runUntilComplete(() => loop.sleep(1));
    try {
      await loop.runUntilComplete(() => loop.createConnection({ port: 1 }));
      assert.unreachable();
    } catch (error) {
      assert.match(error.message, /createConnection: the 'clock-only' backend has no I\/O/);
    }
    await loop.close();
  }
});

user('a readiness backend without Unix socket operations refuses a path with NotSupportedError', async () => {
  const loop = await createLoop({ backend: './test/fixtures/backends.mjs:tcpOnlySelector' });
  try {
    await loop.runUntilComplete(async () => {
      for (const attempt of [
        () => loop.createServer(() => {}, { path: '/tmp/never.sock' }),
        () => loop.createConnection({ path: '/tmp/never.sock' }),
      ]) {
        const error = await attempt().catch((e) => e);
        assert.instance(error, NotSupportedError);
        assert.match(error.message, /the 'tcp-only' backend has no Unix domain sockets/);
      }
      // TCP still works.
      const server = await loop.createServer((conn) => conn.close(), { port: 0 });
      const client = await loop.createConnection({ port: server.address().port });
      client.close();
      await server.close();
    });
  } finally {
    await loop.close();
  }
});

/** Creates a loop on `spec`, which must fail; returns the BackendError. */
async function refused(spec) {
  try {
    const loop = await createLoop({ backend: spec });
    await loop.close();
  } catch (error) {
    assert.instance(error, BackendError, `${spec}: ${error}`);
    assert.ok(error.message.includes(`backend '${spec}'`), error.message);
    return error;
  }
  assert.unreachable(`${spec} loaded`);
}

user('each failure names the spec and the problem', async () => {
  const fixtures = './test/fixtures/backends.mjs';
  const cases = [
    [':createBackend', /is not <module>:<function>/],
    ['./examples/custom-backend.mjs:', /is not <module>:<function>/],
    ['./examples/custom-backend.mjs:1bad', /is not <module>:<function>/],
    ['./no/such/file.mjs:createBackend', /cannot find module '.\/no\/such\/file.mjs'/],
    ['no-such-package-wasmloop:create', /cannot find module 'no-such-package-wasmloop'/],
    ['./test/fixtures:create', /cannot find module '.\/test\/fixtures': .* is not a file/],
    [
      './test/fixtures/broken-import.mjs:main',
      /module '.\/test\/fixtures\/broken-import.mjs' failed to load: its import failed: .*no-such-dependency\.mjs' imported from .*broken-import\.mjs/,
    ],
    [`${fixtures}:missing`, /has no export 'missing'/],
    [`${fixtures}:notAFunction`, /export 'notAFunction' of '.*' is object, not a function/],
    [`${fixtures}:throws`, /the factory threw: no backend for you/],
    [`${fixtures}:returnsNumber`, /not a backend: it returned number, not an object/],
    [`${fixtures}:returnsPartial`, /not a backend: the object it returned lacks or mistypes: attach, close/],
  ];
  for (const [spec, pattern] of cases) assert.match((await refused(spec)).message, pattern);
});

user('only paths, file: URLs and package names are loaded: no data:, node:, http(s): or built-in modules', async () => {
  const cases = [
    [
      'data:text/javascript,export function create() {}:create',
      /'data:text\/javascript,export function create\(\) \{\}' is a data: URL; a module is a path, a file: URL or a package name/,
    ],
    ['node:process:exit', /'node:process' is a node: URL/],
    ['https://example.com/backend.mjs:create', /is a https: URL/],
    ['http://example.com/backend.mjs:create', /is a http: URL/],
    ['process:exit', /'process' is a Node built-in module, not a path or a package/],
    ['child_process:exec', /'child_process' is a Node built-in module/],
  ];
  for (const [spec, pattern] of cases) assert.match((await refused(spec)).message, pattern);
});

user('a readiness backend must have every socket operation, and optional ones must be functions', async () => {
  const fixtures = './test/fixtures/backends.mjs';
  const empty = await refused(`${fixtures}:emptySockets`);
  assert.match(
    empty.message,
    /lacks or mistypes: sockets\.listen, sockets\.accept, sockets\.connect, sockets\.connectError, sockets\.read, sockets\.write, sockets\.shutdownWrite, sockets\.close, sockets\.address, sockets\.pipe \(see docs\/backends\.md\)$/,
  );
  const mistyped = await refused(`${fixtures}:mistypedUnix`);
  assert.match(mistyped.message, /lacks or mistypes: sockets\.listenUnix \(/);
});

user('a factory that does not settle in time is a BackendError; a backend it delivers late is closed', async () => {
  const fixtures = new URL('./fixtures/backends.mjs', import.meta.url);
  const never = await resolveBackend(`${fixtures.href}:neverSettles`, { factoryTimeoutMs: 20 }).catch((e) => e);
  assert.instance(never, BackendError);
  assert.match(never.message, /backend '.*:neverSettles': the factory's promise did not settle within 20 ms/);
  const late = await resolveBackend(`${fixtures.href}:settlesLate`, { factoryTimeoutMs: 20 }).catch((e) => e);
  assert.instance(late, BackendError);
  assert.match(late.message, /did not settle within 20 ms/);
  const { lateBackendClosed } = await import(fixtures.href);
  await lateBackendClosed;
  assert.is(FACTORY_TIMEOUT_MS, 10_000, 'the documented default');
  for (const [options, pattern] of [
    [{ factoryTimeoutMs: -1 }, /factoryTimeoutMs must be a number of ms from 0 to 2147483647, got number -1/],
    [{ factoryTimeoutMs: '20' }, /factoryTimeoutMs must be .*, got string "20"/],
    [{ timeoutMs: 20 }, /resolveBackend: unknown option 'timeoutMs'/],
  ]) {
    await resolveBackend(`${fixtures.href}:clockOnly`, options).then(
      () => assert.unreachable(JSON.stringify(options)),
      (error) => assert.match(error.message, pattern),
    );
  }
});

user('debug mode reports a fallback on the console', async () => {
  const warnings = await capture('warn', async () => {
    const loop = await createLoop({ backend: 'auto', debug: true });
    await loop.close();
  });
  assert.equal(warnings, [], 'nothing to report when the preferred backend starts');
});

auto.run();
user.run();
