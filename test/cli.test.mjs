// The `wasmloop` command in one process, end to end: spawned as a process.
// test/cli-workers.test.mjs covers --workers.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NET_COMPLETION } from './helpers.mjs';
import { root, run, runAsync, talk, withCommand } from './fixtures/command.mjs';

const APPS = './test/fixtures/apps.mjs';
const FIXTURES = join(root, 'test/fixtures');

// Each case spawns the command, often several times: a loaded machine
// takes long to start a process, so the limit against a hang is long too.
const cli = suite('wasmloop run', {}, { timeLimitMs: 120_000 });

cli('--help documents every option and exits 0', () => {
  const r = run(['--help']);
  assert.is(r.status, 0);
  for (const flag of [
    '--backend',
    '--loop',
    '--workers',
    '--host',
    '--port',
    '--uds',
    '--fd',
    '--debug',
    '--slow-callback-ms',
    '--stats',
    '--shutdown-timeout-ms',
    '--max-failed-starts',
  ]) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
  assert.is(run([]).status, 0, 'no arguments: the help');
  assert.is(run(['run', '--help']).status, 0, "the command's help");
});

/** Each case: the arguments, the one line expected on stderr (exit 2), and the working directory. */
const USAGE_ERRORS = [
  [['run', `${APPS}:hello`, '--nope'], /^wasmloop: unknown option '--nope' \(see --help\)$/],
  [['srve', `${APPS}:hello`], /^wasmloop: unknown command 'srve' \(did you mean 'serve'\?\)$/],
  [['start', `${APPS}:hello`], /^wasmloop: unknown command 'start' \(the commands are: run, serve; see --help\)$/],
  [['rum', `${APPS}:hello`], /^wasmloop: unknown command 'rum' \(did you mean 'run'\?\)$/],
  [['run'], /^wasmloop: missing <module>:<function>/],
  [
    ['run', `${APPS}:hello`, `${APPS}:timers`],
    /^wasmloop: unexpected argument '.*:timers' \(one <module>:<function> only\)$/,
  ],
  [['run', 'no-colon'], /^wasmloop: 'no-colon' is not <module>:<function>/],
  [['run', `${APPS}:hello`, '--workers', 'two'], /^wasmloop: --workers must be an integer from 1 to 256, got 'two'$/],
  [['run', `${APPS}:hello`, '--port', '70000'], /^wasmloop: --port must be an integer from 0 to 65535, got '70000'$/],
  [['run', `${APPS}:hello`, '--backend'], /^wasmloop: --backend needs a value$/],
  [
    ['run', `${APPS}:hello`, '--slow-callback-ms', '-3'],
    /^wasmloop: --slow-callback-ms must be an integer from 0 to 3600000, got '-3'$/,
  ],
  [['run', `${APPS}:hello`, '--workers', '2', '--backend', 'virtual'], /--workers needs a real backend/],
  [
    ['run', `${APPS}:hello`, '--fd', '3', '--uds', '/tmp/x.sock'],
    /^wasmloop: --fd and --uds: give one place to listen, not both$/,
  ],
  [['run', `${APPS}:hello`, '--uds'], /^wasmloop: --uds needs a value$/],
  [['run', './test/fixtures/missing.mjs:main'], /^wasmloop: cannot find module '.\/test\/fixtures\/missing.mjs'$/],
  [['run', `${APPS}:missing`], /^wasmloop: module '.\/test\/fixtures\/apps.mjs' has no export 'missing'$/],
  [['run', `${APPS}:notAFunction`], /^wasmloop: export 'notAFunction' of '.*' is number, not a function$/],
  // Numbers are decimal digits, nothing else.
  [['run', `${APPS}:hello`, '--port='], /^wasmloop: --port needs a value$/],
  [['run', `${APPS}:hello`, '--port', '0x50'], /^wasmloop: --port must be an integer from 0 to 65535, got '0x50'$/],
  [['run', `${APPS}:hello`, '--port', '1e3'], /^wasmloop: --port must be .*, got '1e3'$/],
  [['run', `${APPS}:hello`, '--port', ' 80'], /^wasmloop: --port must be .*, got ' 80'$/],
  [['run', `${APPS}:hello`, '--port=+80'], /^wasmloop: --port must be .*, got '\+80'$/],
  [['run', `${APPS}:hello`, '--port', '80.0'], /^wasmloop: --port must be .*, got '80.0'$/],
  [['run', `${APPS}:hello`, '--workers', '1.5'], /^wasmloop: --workers must be .*, got '1.5'$/],
  [['run', `${APPS}:hello`, '--shutdown-timeout-ms', '1e3'], /^wasmloop: --shutdown-timeout-ms must be .*, got '1e3'$/],
  [
    ['run', `${APPS}:hello`, '--max-failed-starts', '0'],
    /^wasmloop: --max-failed-starts must be an integer from 1 to 1000, got '0'$/,
  ],
  [['run', `${APPS}:hello`, '--debug=yes'], /^wasmloop: --debug takes no value, got '--debug=yes'$/],
  // Misspelt or foreign flags: the one meant.
  [['run', `${APPS}:hello`, '--wrkers', '2'], /^wasmloop: unknown option '--wrkers' \(did you mean '--workers'\?\)$/],
  [
    ['run', `${APPS}:hello`, '--shutdown-timeout', '5'],
    /^wasmloop: unknown option '--shutdown-timeout' \(did you mean '--shutdown-timeout-ms'\?\)$/,
  ],
  [
    ['run', `${APPS}:hello`, '--timeout-graceful-shutdown', '5'],
    /^wasmloop: unknown option '--timeout-graceful-shutdown' \(did you mean '--shutdown-timeout-ms'\?\)$/,
  ],
  // Backends.
  [
    ['run', `${APPS}:hello`, '--backend', 'bogus'],
    /^wasmloop: --backend: unknown backend 'bogus' \(known: auto, selector, completion, virtual, clock, or <module>:<function>\)$/,
  ],
  [
    ['run', `${APPS}:hello`, '--loop', 'selctor'],
    /^wasmloop: --backend: unknown backend 'selctor' \(did you mean 'selector'\?\)$/,
  ],
  [
    ['run', `${APPS}:hello`, '--backend', './no/such/backend.mjs:create'],
    /^wasmloop: --backend: cannot find module '.\/no\/such\/backend.mjs'$/,
  ],
  [
    ['run', `${APPS}:hello`, '--backend', './test/fixtures/backends.mjs:returnsNumber'],
    /^wasmloop: backend '.*:returnsNumber': not a backend: it returned number, not an object/,
  ],
  // Modules: only paths, file: URLs and packages; a failed import is named.
  [
    ['run', 'node:process:exit'],
    /^wasmloop: 'node:process' is a node: URL; a module is a path, a file: URL or a package name$/,
  ],
  [
    ['run', 'data:text/javascript,export function main() {}:main'],
    /^wasmloop: 'data:text\/javascript,.*' is a data: URL/,
  ],
  [['run', 'process:exit'], /^wasmloop: 'process' is a Node built-in module, not a path or a package$/],
  [
    ['run', './test/fixtures/broken-import.mjs:main'],
    /^wasmloop: module '.\/test\/fixtures\/broken-import.mjs' failed to load: its import failed: Cannot find module '.*\/no-such-dependency.mjs' imported from .*\/broken-import.mjs$/,
  ],
  [['run', 'apps:hello'], /^wasmloop: cannot find module 'apps' \(did you mean '.\/apps.mjs'\?\)$/, FIXTURES],
];

cli('every usage error prints one line naming what is wrong and exits 2', async () => {
  // Four at a time: each is a process of its own.
  const results = [];
  for (let i = 0; i < USAGE_ERRORS.length; i += 4) {
    results.push(...(await Promise.all(USAGE_ERRORS.slice(i, i + 4).map(([args, , cwd]) => runAsync(args, { cwd })))));
  }
  for (const [i, [args, pattern]] of USAGE_ERRORS.entries()) {
    const r = results[i];
    const what = args.join(' ');
    assert.is(r.status, 2, `${what}: exit ${r.status}, ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], pattern);
  }
});

cli('runs the function on each backend until its promise settles; --loop is --backend', () => {
  for (const backend of [
    'auto',
    'selector',
    'completion',
    'virtual',
    './examples/custom-backend.mjs:createBackend',
    NET_COMPLETION,
  ]) {
    const r = run(['run', `${APPS}:hello`, '--backend', backend]);
    assert.is(r.status, 0, `${backend}: ${r.stderr}`);
    const expected =
      {
        auto: 'selector',
        './examples/custom-backend.mjs:createBackend': 'accelerated-2x',
        [NET_COMPLETION]: 'completion',
      }[backend] ?? backend;
    assert.match(r.stdout, new RegExp(`hello from ${expected}, worker 0, debug false`));
  }
  const slept = run(['run', `${APPS}:longSleep`, '--loop', 'virtual']);
  assert.is(slept.status, 0);
  assert.match(slept.stdout, /slept until 3600000 ms/);
});

cli('a bare module name that is a file in the working directory is that file (`app.mjs:main`)', () => {
  const r = run(['run', 'apps.mjs:hello', '--backend', 'backends.mjs:tcpOnlySelector'], { cwd: FIXTURES });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /hello from tcp-only, worker 0/);
});

cli('a function that rejects exits 1 with its error', () => {
  const r = run(['run', `${APPS}:fails`]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^wasmloop: .*:fails failed: Error: the application failed\n\s+at fails /);
});

cli('--debug reports slow callbacks and unhandled rejections with their context', () => {
  const slow = run(['run', `${APPS}:slowCallback`, '--debug', '--slow-callback-ms', '10']);
  assert.is(slow.status, 0, slow.stderr);
  assert.match(slow.stderr, /executing callback blockingWork took \d+\.\d+ ms; it was scheduled at:\n.*apps\.mjs/);
  const quiet = run(['run', `${APPS}:slowCallback`, '--slow-callback-ms', '10']);
  assert.not.match(quiet.stderr, /took/, 'no report without --debug');
  const leak = run(['run', `${APPS}:leaksRejection`, '--debug']);
  assert.match(leak.stderr, /Unhandled promise rejection in callback careless\nscheduled at:\n.*apps\.mjs/);
  assert.match(leak.stderr, /nobody handles this/);
});

cli('--stats prints a table that parses back', () => {
  const r = run(['run', `${APPS}:timers`, '--stats']);
  assert.is(r.status, 0, r.stderr);
  const table = r.stdout.slice(r.stdout.indexOf('wasmloop stats'));
  const rows = Object.fromEntries(
    table
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((line) => {
        const m = /^\s+(.+?)\s{2,}(.+)$/.exec(line);
        return [m[1], m[2]];
      }),
  );
  assert.ok(Number(rows.iterations) >= 2);
  assert.ok(Number(rows['callbacks run']) >= 51, rows['callbacks run']);
  assert.is(Number(rows['timers run']), 51);
  assert.match(rows['timer lag p99'], /^\d+\.\d{3} ms$/);
  assert.ok(parseFloat(rows['timer lag max']) >= parseFloat(rows['timer lag p50']));
  assert.match(rows['time running callbacks'], /ms$/);
  assert.match(rows['Wasm memory'], /MiB$/);
});

const refusedAt = (port) =>
  new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', (e) => resolve(e.code));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });

cli('a server shuts down gracefully on SIGTERM: it lets an open connection finish', () =>
  withCommand(['run', './examples/echo-server.mjs:main', '--port', '0', '--stats'], async (server) => {
    const port = Number((await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    const { reply, socket } = await talk(port, 'before\n');
    assert.is(reply, 'before\n');
    const signalledAt = performance.now();
    server.child.kill('SIGTERM');
    const grace = Number((await server.waitFor(/SIGTERM: .*closing, open connections get (\d+) ms/, 'err'))[1]);
    // The default 10000 ms count from the signal: what is left when the line
    // is printed, which was no later than now.
    const sinceSignal = performance.now() - signalledAt;
    assert.ok(
      grace <= 10_000 && grace >= 10_000 - Math.ceil(sinceSignal) - 1,
      `${grace} ms left ${sinceSignal} ms after the signal`,
    );
    // Still served after the signal, while open; no new connections.
    const again = await talk(port, 'after the signal\n', socket);
    assert.is(again.reply, 'after the signal\n');
    assert.is(await refusedAt(port), 'ECONNREFUSED');
    socket.end();
    const { code } = await server.exited;
    assert.is(code, 0, server.output().err);
    assert.match(server.output().out, /wasmloop stats/);
    await server.noneLeft();
  }),
);

cli('--uds serves on a Unix domain socket and removes it on shutdown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-cli-'));
  const path = join(dir, 'echo.sock');
  try {
    for (const backend of ['selector', 'completion']) {
      await withCommand(
        ['run', './examples/echo-server.mjs:main', '--uds', path, '--backend', backend],
        async (server) => {
          assert.is((await server.waitFor(/listening on (\S+) /))[1], path);
          assert.is(await unixEcho(path, 'over uds\n'), 'over uds\n');
          server.child.kill('SIGTERM');
          const { code } = await server.exited;
          assert.is(code, 0, server.output().err);
          assert.not.ok(existsSync(path), `${backend}: the socket file was removed`);
          await server.noneLeft();
        },
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Sends `text` to the echo server at `path`; resolves with the line it sends back. */
function unixEcho(path, text) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path });
    let got = '';
    s.on('data', (d) => {
      got += d;
      if (got.endsWith('\n')) {
        s.end();
        resolve(got);
      }
    });
    s.once('error', reject);
    s.write(text);
  });
}

cli('--uds after a crash: the socket file the killed server left is replaced, and serves', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-cli-'));
  const path = join(dir, 'crashed.sock');
  const args = ['run', './examples/echo-server.mjs:main', '--uds', path];
  try {
    await withCommand(args, async (crashed) => {
      await crashed.waitFor(/listening on/);
      crashed.child.kill('SIGKILL');
      await crashed.exited;
      await crashed.noneLeft();
    });
    assert.ok(lstatSync(path).isSocket(), 'the killed server left its socket file');
    await withCommand(args, async (server) => {
      await server.waitFor(/listening on/);
      assert.is(await unixEcho(path, 'again\n'), 'again\n');
      server.child.kill('SIGTERM');
      assert.is((await server.exited).code, 0, server.output().err);
      assert.not.ok(existsSync(path));
      await server.noneLeft();
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('on shutdown, connections still open after the timeout are closed and the process exits 0', () =>
  withCommand(
    ['run', './examples/echo-server.mjs:main', '--port', '0', '--shutdown-timeout-ms', '200'],
    async (server) => {
      const port = Number((await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
      const { socket } = await talk(port, 'hold\n');
      const closedByServer = new Promise((resolve) => socket.on('close', resolve));
      server.child.kill('SIGINT');
      const { code } = await server.exited;
      assert.is(code, 0);
      assert.match(server.output().err, /connections still open after 200 ms: closing them/);
      await closedByServer;
      await server.noneLeft();
    },
  ),
);

cli('a signal while the module loads or the function starts ends the process at once with 0', async () => {
  await withCommand(['run', './test/fixtures/hangs-on-import.mjs:main'], async (server) => {
    await server.waitFor(/loading \(pid/);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null });
    await server.noneLeft();
  });
  await withCommand(['run', `${APPS}:slowStart`, '--shutdown-timeout-ms', '100'], async (server) => {
    await server.waitFor(/starting \(pid/);
    server.child.kill('SIGINT');
    assert.equal(await server.exited, { code: 0, signal: null });
    assert.match(server.output().err, /still starting 100 ms after the signal: stopping/);
    await server.noneLeft();
  });
  // A function that finishes starting within the timeout: its server is closed at once.
  await withCommand(
    ['run', `${APPS}:slowStart`, '--port', '0'],
    async (server) => {
      await server.waitFor(/starting \(pid/);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, { code: 0, signal: null });
      assert.match(server.output().out, /listening \(pid/);
      assert.match(server.output().err, /SIGTERM: .*closing/);
      await server.noneLeft();
    },
    { env: { SLOW_START_MS: '50' } },
  );
});

cli.run();
