// `wasmloop run --limit-concurrency N --timeout-keep-alive S`: uvicorn's
// flags as options.listen's maxConnections and idleTimeoutMs, end to end
// (the command spawned, clients on node:net), and their usage errors.
import net from 'node:net';
import * as assert from 'uvu/assert';
import { run, talk, withCommand } from './fixtures/command.mjs';
import { suite } from './harness.mjs';

const cli = suite('wasmloop run: limits');

/** Resolves once the server ends `socket` (its end of stream, or a reset). */
const ended = (socket) =>
  new Promise((resolve) => {
    socket.on('error', () => resolve('reset'));
    socket.on('end', () => resolve('end'));
    socket.on('close', () => resolve('closed'));
    socket.resume();
  });

/** The `--stats` table's rows, by name. */
function statsRows(out) {
  const table = out.slice(out.indexOf('wasmloop stats'));
  const rows = {};
  for (const line of table.split('\n').slice(1)) {
    const m = /^\s+(.+?)\s{2,}(.+)$/.exec(line);
    if (m !== null) rows[m[1]] = m[2];
  }
  return rows;
}

cli('--limit-concurrency closes one connection too many; --timeout-keep-alive closes an idle one', () =>
  withCommand(
    [
      'run',
      './examples/echo-server.mjs:main',
      '--port',
      '0',
      '--limit-concurrency',
      '1',
      '--timeout-keep-alive',
      '1',
      '--stats',
    ],
    async (server) => {
      const port = Number((await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
      const { reply, socket } = await talk(port, 'hello\n');
      assert.is(reply, 'hello\n');
      const firstEnded = ended(socket);
      // The second is accepted and closed at once while the first is open.
      const second = net.connect({ port, host: '127.0.0.1' });
      assert.ok(['end', 'closed', 'reset'].includes(await ended(second)));
      second.destroy();
      // The first, left idle, is closed by the server after 1 s.
      assert.is(await firstEnded, 'end');
      socket.destroy();
      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      assert.is(code, 0, server.output().err);
      const rows = statsRows(server.output().out);
      assert.is(rows['connections refused'], '1');
      assert.is(rows['connections timed out'], '1');
      await server.noneLeft();
    },
  ),
);

cli('the flags are whole numbers in range, each error naming its flag', () => {
  for (const [args, pattern] of [
    [['--limit-concurrency', '0'], /^wasmloop: --limit-concurrency must be an integer from 1 to 2147483647, got '0'$/],
    [['--limit-concurrency', '1.5'], /^wasmloop: --limit-concurrency must be an integer/],
    [['--timeout-keep-alive', '0'], /^wasmloop: --timeout-keep-alive must be an integer from 1 to 2147483, got '0'$/],
    [['--timeout-keep-alive', '5s'], /^wasmloop: --timeout-keep-alive must be an integer/],
    [['--timeout-keep-alive'], /^wasmloop: --timeout-keep-alive needs a value$/],
  ]) {
    const r = run(['run', './test/fixtures/apps.mjs:hello', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr.trim(), pattern);
  }
  const help = run(['run', '--help']);
  assert.match(help.stdout, /--limit-concurrency <n>/);
  assert.match(help.stdout, /--timeout-keep-alive <s>/);
});

cli.run();
