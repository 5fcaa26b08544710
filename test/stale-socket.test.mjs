// A Unix socket file left by a server that crashed: createServer({ path })
// removes it when nothing accepts on it, and never a live socket or a file
// that is not a socket.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddressInUseError } from '../ts-host/dist/index.js';
import { IO_BACKENDS, NODE, backendLabel, onLoop } from './helpers.mjs';

/** Leaves a socket file at `path` that nothing accepts on: its server is killed (SIGKILL) before it can remove it. */
function leaveStaleSocket(path) {
  const script = "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";
  const r = spawnSync(NODE, ['-e', script, path], { timeout: 30_000 });
  assert.is(r.signal, 'SIGKILL', String(r.stderr));
  assert.ok(lstatSync(path).isSocket(), 'the crashed server left its socket file');
}

/** A temporary directory for one case. */
async function inTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-stale-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const stale = suite('stale Unix socket files');

for (const backend of IO_BACKENDS.filter((b) => b !== 'virtual')) {
  stale(`${backendLabel(backend)}: a socket file nothing accepts on is replaced by the new server`, () =>
    inTempDir((dir) =>
      onLoop(backend, async (loop) => {
        const path = join(dir, 'crashed.sock');
        leaveStaleSocket(path);
        const server = await loop.createServer(
          async (conn) => {
            await conn.write('fresh\n');
            conn.close();
          },
          { path },
        );
        const reply = await loop.createConnection({ path }).then(async (client) => {
          const data = await client.read();
          client.close();
          return Buffer.from(data).toString();
        });
        assert.is(reply, 'fresh\n');
        await server.close();
        assert.not.ok(existsSync(path), 'closing removed it');
      }),
    ),
  );

  stale(`${backendLabel(backend)}: a live socket stays (AddressInUseError) and its server keeps serving`, () =>
    inTempDir((dir) =>
      onLoop(backend, async (loop) => {
        const path = join(dir, 'live.sock');
        const live = net.createServer((socket) => socket.on('error', () => {}).end('still mine\n'));
        await new Promise((resolve) => live.listen(path, resolve));
        try {
          const error = await loop.createServer(() => {}, { path }).catch((e) => e);
          assert.instance(error, AddressInUseError);
          assert.match(error.message, path);
          const reply = await new Promise((resolve, reject) => {
            let got = '';
            net
              .connect({ path })
              .on('data', (d) => (got += d))
              .on('end', () => resolve(got))
              .on('error', reject);
          });
          assert.is(reply, 'still mine\n');
        } finally {
          await new Promise((resolve) => live.close(resolve));
        }
      }),
    ),
  );

  stale(`${backendLabel(backend)}: a file that is not a socket stays, and is AddressInUseError`, () =>
    inTempDir((dir) =>
      onLoop(backend, async (loop) => {
        const path = join(dir, 'notes.txt');
        writeFileSync(path, 'keep me');
        const error = await loop.createServer(() => {}, { path }).catch((e) => e);
        assert.instance(error, AddressInUseError);
        assert.is(readFileSync(path, 'utf8'), 'keep me');
      }),
    ),
  );
}

stale('virtual: its paths are names in memory; a socket file on disk is neither used nor removed', () =>
  inTempDir((dir) =>
    onLoop('virtual', async (loop) => {
      const path = join(dir, 'crashed.sock');
      leaveStaleSocket(path);
      const server = await loop.createServer((conn) => conn.close(), { path });
      assert.ok(lstatSync(path).isSocket(), 'the file on disk is untouched');
      await server.close();
    }),
  ),
);

stale.run();
