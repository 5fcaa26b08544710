// The HTTP server (its Wasm parser included) under Node, Deno and Bun, on
// the virtual backend's in-memory network: a chunked POST answered, a
// request without Host refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = 'test/fixtures/http-virtual.mjs';
const hosts = {
  node: [process.execPath, [script]],
  deno: ['node_modules/.bin/deno', ['run', '-A', script]],
  bun: ['node_modules/.bin/bun', [script]],
};

for (const [host, [command, args]] of Object.entries(hosts)) {
  test(`serve() on ${host}`, () => {
    const out = execFileSync(command, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    const report = JSON.parse(out.trim().split('\n').pop());
    assert.equal(report, { statuses: [200, 400], body: true });
  });
}

test.run();
