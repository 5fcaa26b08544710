// The selector's poller on Linux: up to 16 descriptors watched through
// libuv directly, more in an epoll set of its own (poller-epoll.c). What a
// program sees must not change as watches move from one to the other.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onLoop, SELECTOR } from './helpers.mjs';

const test = suite('selector poller: direct watches and the epoll set');
const LINUX = process.platform === 'linux';

async function echoServer(loop) {
  return loop.createServer(
    async (conn) => {
      for await (const chunk of conn) await conn.write(chunk);
      await conn.end();
    },
    { port: 0 },
  );
}

/** Writes `message` on every connection at once; checks each echo. */
async function echoOnAll(conns, message) {
  await Promise.all(
    conns.map(async (conn, i) => {
      const text = `${message} ${i}`;
      await conn.write(text);
      let got = '';
      while (got.length < text.length) got += Buffer.from(await conn.read()).toString();
      assert.is(got, text);
    }),
  );
}

if (SELECTOR && LINUX) {
  test('echo goes on while watches move into the set, and after they come back', () =>
    onLoop('selector', async (loop) => {
      let server = await echoServer(loop);
      const connect = () => loop.createConnection({ host: '127.0.0.1', port: server.address().port });
      // Listener, one client, one server side: watched directly.
      const first = await connect();
      await echoOnAll([first], 'direct');
      // 40 more connections (80 more descriptors): past 16, into the set.
      const more = await Promise.all(Array.from({ length: 40 }, connect));
      await echoOnAll([first, ...more], 'nested');
      // Fewer again: the set keeps them while any is watched.
      for (const conn of more) conn.close();
      await echoOnAll([first], 'nested, fewer');
      first.close();
      await server.close();
      // Nothing watched: watches start direct again.
      while (loop.stats().watchers > 0) await loop.sleep(1);
      server = await echoServer(loop);
      const again = await Promise.all(Array.from({ length: 3 }, connect));
      await echoOnAll(again, 'direct again');
      for (const conn of again) conn.close();
      await server.close();
    }));

  test('addReader leaves a blocking descriptor blocking', () =>
    onLoop('selector', async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmloop-poller-'));
      const path = join(dir, 'fifo');
      try {
        execFileSync('mkfifo', [path]);
        // Read and write on one descriptor: opening a FIFO so does not block on Linux.
        const fd = openSync(path, 'r+');
        const flags = () => {
          const info = `/proc/self/fdinfo/${fd}`;
          return existsSync(info) ? Number.parseInt(/flags:\s*([0-7]+)/.exec(readFileSync(info, 'utf8'))[1], 8) : 0;
        };
        const O_NONBLOCK = 0o4000;
        assert.is(flags() & O_NONBLOCK, 0, 'opened blocking');
        const ready = new Promise((resolve) => loop.addReader(fd, resolve));
        writeSync(fd, 'x');
        await ready;
        assert.is(flags() & O_NONBLOCK, 0, 'still blocking while watched');
        assert.ok(loop.removeReader(fd));
        closeSync(fd);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));
}

test.run();
