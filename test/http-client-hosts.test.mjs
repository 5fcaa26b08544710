// loop.fetch under Node, Deno and Bun, on the virtual backend's in-memory
// network and on each host's own sockets (test/fixtures/http-client-hosts.mjs).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { test } from './harness.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = 'test/fixtures/http-client-hosts.mjs';
const hosts = {
  node: [process.execPath, [script]],
  deno: ['node_modules/.bin/deno', ['run', '-A', script]],
  bun: ['node_modules/.bin/bun', [script]],
};
const SEEN = { redirected: [true, 'GET length null '], streamed: 'POST chunked abcd', head: [200, '17', null] };

for (const [host, [command, args]] of Object.entries(hosts)) {
  test(`loop.fetch on ${host}: virtual and the host's sockets`, () => {
    const { FORCE_COLOR, ...env } = process.env;
    const out = execFileSync(command, args, { cwd: root, encoding: 'utf8', env: { ...env, NO_COLOR: '1' } });
    assert.equal(JSON.parse(out.trim().split('\n').pop()), { virtual: SEEN, auto: SEEN });
  });
}

test.run();
