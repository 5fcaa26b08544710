// The `wasmloop` command, end to end: spawned as a process.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../ts-host/dist/cli.js', import.meta.url));
const APPS = './test/fixtures/apps.mjs';
/** The environment without uvu's FORCE_COLOR, so outputs are plain text. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'FORCE_COLOR'));

function run(args, timeout = 20_000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', timeout, env: ENV });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the command; resolves when `ready` matches a stdout line. */
function start(args, ready) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: ENV });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const readyPromise = new Promise((resolve, reject) => {
    const check = () => {
      const m = ready.exec(out);
      if (m) resolve(m);
    };
    child.stdout.on('data', check);
    exited.then(() => reject(new Error(`exited before ready: ${out} ${err}`)));
  });
  return { child, ready: readyPromise, exited, output: () => ({ out, err }) };
}

/** One request/response over TCP: sends `text`, reads until `expect` has arrived. */
function talk(port, text, socket) {
  return new Promise((resolve, reject) => {
    const s = socket ?? net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const onData = (d) => {
      got += d;
      if (got.endsWith('\n') || got.length >= text.length) {
        s.off('data', onData);
        resolve({ reply: got, socket: s });
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(text);
  });
}

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const cli = suite('wasmloop run');

cli('--help documents every option and exits 0', () => {
  const r = run(['--help']);
  assert.is(r.status, 0);
  for (const flag of ['--backend', '--workers', '--host', '--port', '--debug', '--slow-callback-ms', '--stats', '--shutdown-timeout-ms']) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
  assert.is(run([]).status, 0, 'no arguments: the help');
});

cli('bad flags and targets print one clear line and exit non-zero', () => {
  const cases = [
    [['run', `${APPS}:hello`, '--nope'], /^wasmloop: unknown option '--nope' \(see --help\)$/],
    [['serve', `${APPS}:hello`], /^wasmloop: unknown command 'serve'/],
    [['run'], /^wasmloop: missing <module>:<function>/],
    [['run', 'no-colon'], /^wasmloop: 'no-colon' is not <module>:<function>$/],
    [['run', `${APPS}:hello`, '--workers', 'two'], /^wasmloop: --workers must be an integer from 1 to 256, got 'two'$/],
    [['run', `${APPS}:hello`, '--port', '70000'], /^wasmloop: --port must be an integer from 0 to 65535/],
    [['run', `${APPS}:hello`, '--backend'], /^wasmloop: --backend needs a value$/],
    [['run', `${APPS}:hello`, '--slow-callback-ms', '-3'], /slow-callback-ms must be an integer/],
    [['run', `${APPS}:hello`, '--workers', '2', '--backend', 'virtual'], /--workers needs a real backend/],
    [['run', `${APPS}:hello`, '--uds', '/tmp/x.sock', '--workers', '2'], /^wasmloop: --uds cannot be shared by --workers/],
    [['run', `${APPS}:hello`, '--uds'], /^wasmloop: --uds needs a value$/],
    [['run', './test/fixtures/missing.mjs:main'], /^wasmloop: cannot find module '.\/test\/fixtures\/missing.mjs'$/],
    [['run', `${APPS}:missing`], /^wasmloop: module '.\/test\/fixtures\/apps.mjs' has no export 'missing'$/],
    [['run', `${APPS}:notAFunction`], /^wasmloop: export 'notAFunction' of '.*' is number, not a function$/],
    [['run', `${APPS}:hello`, '--backend', 'nope'], /^wasmloop: backend: unknown backend 'nope'/],
  ];
  for (const [args, pattern] of cases) {
    const r = run(args);
    assert.ok(r.status !== 0, `${args.join(' ')}: exit ${r.status}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `${args.join(' ')}: one line, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], pattern);
  }
});

cli('runs the function on each backend until its promise settles', () => {
  for (const backend of ['auto', 'selector', 'completion', 'virtual', './examples/custom-backend.mjs:createBackend']) {
    const r = run(['run', `${APPS}:hello`, '--backend', backend]);
    assert.is(r.status, 0, `${backend}: ${r.stderr}`);
    const expected = { auto: 'selector', './examples/custom-backend.mjs:createBackend': 'accelerated-2x' }[backend] ?? backend;
    assert.match(r.stdout, new RegExp(`hello from ${expected}, worker 0, debug false`));
  }
  const slept = run(['run', `${APPS}:longSleep`, '--backend', 'virtual']);
  assert.is(slept.status, 0);
  assert.match(slept.stdout, /slept until 3600000 ms/);
});

cli('a function that rejects exits 1 with its error', () => {
  const r = run(['run', `${APPS}:fails`]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /wasmloop: .*:fails failed: Error: the application failed/);
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

cli('a server shuts down gracefully on SIGTERM: it lets an open connection finish', async () => {
  const server = start(['run', './examples/echo-server.mjs:main', '--port', '0', '--stats'], /listening on 127\.0\.0\.1:(\d+)/);
  const port = Number((await server.ready)[1]);
  const { reply, socket } = await talk(port, 'before\n');
  assert.is(reply, 'before\n');
  server.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 150));
  // Still served after the signal, while open.
  const again = await talk(port, 'after the signal\n', socket);
  assert.is(again.reply, 'after the signal\n');
  // No new connections.
  const refused = await new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', (e) => resolve(e.code));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
  assert.is(refused, 'ECONNREFUSED');
  socket.end();
  const { code } = await server.exited;
  assert.is(code, 0, server.output().err);
  assert.match(server.output().err, /SIGTERM: .*closing, open connections get 10000 ms/);
  assert.match(server.output().out, /wasmloop stats/);
});

cli('--uds serves on a Unix domain socket and removes it on shutdown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-cli-'));
  const path = join(dir, 'echo.sock');
  try {
    for (const backend of ['selector', 'completion']) {
      const server = start(['run', './examples/echo-server.mjs:main', '--uds', path, '--backend', backend], /listening on (\S+) /);
      assert.is((await server.ready)[1], path);
      const reply = await new Promise((resolve, reject) => {
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
        s.write('over uds\n');
      });
      assert.is(reply, 'over uds\n');
      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      assert.is(code, 0, server.output().err);
      assert.not.ok(existsSync(path), `${backend}: the socket file was removed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('on shutdown, connections still open after the timeout are closed and the process exits 0', async () => {
  const server = start(['run', './examples/echo-server.mjs:main', '--port', '0', '--shutdown-timeout-ms', '200'], /listening on 127\.0\.0\.1:(\d+)/);
  const port = Number((await server.ready)[1]);
  const { socket } = await talk(port, 'hold\n');
  const t0 = performance.now();
  server.child.kill('SIGINT');
  const { code } = await server.exited;
  assert.is(code, 0);
  assert.ok(performance.now() - t0 >= 190, 'waited for the timeout');
  assert.match(server.output().err, /connections still open after 200 ms: closing them/);
  socket.destroy();
});

cli('--workers: processes share the port, a crashed worker is restarted, SIGTERM stops all', async () => {
  const port = await freePort();
  const server = start(['run', './examples/echo-server.mjs:main', '--port', String(port), '--workers', '2'], /(listening on.*\n[^]*listening on.*\n)/);
  await server.ready;
  const pids = new Set();
  for (let i = 0; i < 30 && pids.size < 2; i++) {
    const { reply, socket } = await talk(port, 'pid\n');
    pids.add(reply.trim());
    socket.destroy();
  }
  assert.is(pids.size, 2, 'both workers answered');
  // Crash one.
  const crasher = net.connect({ port, host: '127.0.0.1' });
  crasher.on('error', () => {});
  crasher.write('crash\n');
  for (let i = 0; i < 100 && !/restarting it/.test(server.output().err); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(server.output().err, /worker \d \(pid \d+\) exited \(code 3\); restarting it/);
  for (let i = 0; i < 100 && (server.output().out.match(/listening on/g) ?? []).length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  assert.is((server.output().out.match(/listening on/g) ?? []).length, 3, 'the replacement listens');
  const { reply } = await talk(port, 'still here\n');
  assert.is(reply, 'still here\n');
  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  assert.is(code, 0, server.output().err);
  assert.match(server.output().err, /SIGTERM: stopping 2 workers/);
});

cli.run();
