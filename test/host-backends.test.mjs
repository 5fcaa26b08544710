// Which completion implementation each host gets: its own sockets on Deno
// and Bun, the addon on Node, node:net by name anywhere; and each host's
// own implementation refuses to start elsewhere, saying why.
import { test } from './harness.mjs';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { BackendError, createLoop } from '../ts-host/dist/index.js';
import { HOST, NET_COMPLETION } from './helpers.mjs';

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
  for (const [host, spec] of [['deno', DENO], ['bun', BUN]]) {
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

test.run();
