// `wasmloop run --workers N`: the primary and its workers, spawned as
// processes. Each case ends by checking, by PID, that no process of the run
// (primary or worker) is left.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { NET_COMPLETION, backendLabel } from './helpers.mjs';
import { bothWorkersAnswer, freePort, printedPids, talk, withCommand } from './fixtures/command.mjs';

const APPS = './test/fixtures/apps.mjs';
const ECHO = './examples/echo-server.mjs:main';

/** Lines of `text` matching `pattern`. */
const count = (text, pattern) => text.split('\n').filter((line) => pattern.test(line)).length;

// Each case starts a primary and its workers: a loaded machine takes long
// to start processes, so the limit against a hang is long too.
const workers = suite('wasmloop run --workers', {}, { timeLimitMs: 120_000 });

for (const backend of ['selector', 'completion', NET_COMPLETION]) {
  workers(
    `${backendLabel(backend)}: two workers share the port; SIGTERM stops both and the primary exits 0`,
    async () => {
      const port = await freePort();
      await withCommand(
        ['run', ECHO, '--port', String(port), '--workers', '2', '--backend', backend],
        async (server) => {
          await server.waitFor(/listening on[\s\S]*listening on/, 'out');
          const answered = await bothWorkersAnswer(port);
          assert.is(answered.size, 2, 'both workers answered');
          assert.equal([...answered].sort(), printedPids(server.output().out).sort());
          assert.not.match(server.output().err, /EADDRINUSE|restarting/);
          server.child.kill('SIGTERM');
          assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
          assert.match(server.output().err, /SIGTERM: stopping 2 workers/);
          await server.noneLeft();
        },
      );
    },
  );
}

workers('a worker that crashes is restarted after a backoff and serves again', async () => {
  const port = await freePort();
  await withCommand(['run', ECHO, '--port', String(port), '--workers', '2'], async (server) => {
    await server.waitFor(/listening on[\s\S]*listening on/, 'out');
    const crasher = net.connect({ port, host: '127.0.0.1' });
    crasher.on('error', () => {});
    crasher.write('crash\n');
    await server.waitFor(/worker \d \(pid \d+\) exited \(code 3\); restarting it in 100 ms\n/, 'err');
    await server.waitFor(/(listening on[\s\S]*){3}/, 'out');
    const { reply, socket } = await talk(port, 'still here\n');
    assert.is(reply, 'still here\n');
    socket.destroy();
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  });
});

workers('SIGTERM while a crashed worker is being restarted stops everything', async () => {
  const port = await freePort();
  await withCommand(['run', ECHO, '--port', String(port), '--workers', '2'], async (server) => {
    await server.waitFor(/listening on[\s\S]*listening on/, 'out');
    const crasher = net.connect({ port, host: '127.0.0.1' });
    crasher.on('error', () => {});
    crasher.write('crash\n');
    await server.waitFor(/restarting it in/, 'err');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  });
});

workers('SIGTERM while the workers load the module or start the function stops them; the primary exits 0', async () => {
  await withCommand(['run', './test/fixtures/hangs-on-import.mjs:main', '--workers', '2'], async (server) => {
    await server.waitFor(/loading \(pid[\s\S]*loading \(pid/, 'out');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  });
  await withCommand(['run', `${APPS}:slowStart`, '--workers', '2', '--shutdown-timeout-ms', '100'], async (server) => {
    await server.waitFor(/starting \(pid[\s\S]*starting \(pid/, 'out');
    server.child.kill('SIGINT');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    assert.is(count(server.output().err, /still starting 100 ms after the signal: stopping$/), 2);
    await server.noneLeft();
  });
});

workers(
  'a function that keeps failing to start: one line per failed start, a backoff, then the primary gives up',
  async () => {
    await withCommand(['run', `${APPS}:fails`, '--workers', '2', '--max-failed-starts', '3'], async (server) => {
      assert.equal(await server.exited, { code: 1, signal: null });
      const { err } = server.output();
      const lines = err.trim().split('\n');
      assert.match(lines.at(-1), /^wasmloop: worker \d failed to start 3 times in a row: giving up$/);
      // At most three failed starts per worker, each one line, and no stack.
      const failures = count(
        err,
        /^wasmloop: worker \d \(pid \d+\) failed to start: .*:fails failed: Error: the application failed/,
      );
      assert.ok(failures >= 3 && failures <= 6, err);
      assert.is(lines.length, failures + 1, err);
      assert.match(err, /restarting it in 100 ms \(failed start 1 of 3\)/);
      assert.match(err, /restarting it in 200 ms \(failed start 2 of 3\)/);
      await server.noneLeft();
    });
  },
);

workers('a port in use: the workers fail to start and the primary gives up, exit 1 (--debug: one stack)', async () => {
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = taken.address();
    await withCommand(
      ['run', ECHO, '--port', String(port), '--workers', '2', '--max-failed-starts', '2', '--debug'],
      async (server) => {
        assert.equal(await server.exited, { code: 1, signal: null });
        const { err } = server.output();
        assert.match(err, /failed to start: .* failed: AddressInUseError: listen: EADDRINUSE/);
        assert.is(count(err, /^\s+at ioError /), 1, 'the stack, once');
        assert.match(err, /failed to start 2 times in a row: giving up\n$/);
        await server.noneLeft();
      },
    );
  } finally {
    taken.close();
  }
});

workers('SIGTERM while a restart waits out its backoff stops everything', async () => {
  await withCommand(['run', `${APPS}:fails`, '--workers', '2'], async (server) => {
    await server.waitFor(/restarting it in 400 ms/, 'err');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    await server.noneLeft();
  });
});

workers('an application that cannot be loaded: one line, exit 2, no worker left', async () => {
  await withCommand(['run', `${APPS}:typo`, '--workers', '2'], async (server) => {
    assert.equal(await server.exited, { code: 2, signal: null });
    assert.is(server.output().err, "wasmloop: module './test/fixtures/apps.mjs' has no export 'typo'\n");
    await server.noneLeft();
  });
});

workers('workers whose function finishes are not replaced; the primary exits 0 after the last', async () => {
  await withCommand(['run', `${APPS}:hello`, '--workers', '2'], async (server) => {
    assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
    const { out, err } = server.output();
    assert.match(out, /hello from selector, worker 1,/);
    assert.match(out, /hello from selector, worker 2,/);
    assert.is(err, '');
    await server.noneLeft();
  });
});

workers('workers whose primary was killed exit', async () => {
  const port = await freePort();
  await withCommand(['run', ECHO, '--port', String(port), '--workers', '2'], async (server) => {
    await server.waitFor(/listening on[\s\S]*listening on/, 'out');
    assert.is(server.pids().length, 3, 'a primary and two workers');
    server.child.kill('SIGKILL');
    await server.exited;
    await server.noneLeft();
  });
});

workers('workers that cannot act on SIGTERM are killed after the shutdown timeout; the primary exits 0', async () => {
  const port = await freePort();
  await withCommand(
    ['run', `${APPS}:wedged`, '--port', String(port), '--workers', '2', '--shutdown-timeout-ms', '100'],
    async (server) => {
      await server.waitFor(/wedged \(pid[\s\S]*wedged \(pid/, 'out');
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, { code: 0, signal: null }, server.output().err);
      assert.is(count(server.output().err, /still running 1100 ms after it was told to stop: killing it$/), 2);
      await server.noneLeft();
    },
  );
});

workers.run();
