// The harness's time limits: a hung case fails with its suite's and its own
// name, the run goes on to the next case, and a timer a hung case leaves
// running does not keep the run from ending. And every test file takes its
// suites from the harness, so no case runs without a limit.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './harness.mjs';

const limits = suite('test harness: time limits');

limits('hung cases fail with their names at their limits, and the run ends', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const run = spawnSync(
    process.execPath,
    ['node_modules/uvu/bin.js', 'test/fixtures', '^hung-cases\\.mjs$', '--color=false'],
    {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  assert.is(run.error, undefined, 'the run ended by itself');
  assert.is(run.status, 1, run.stdout + run.stderr);
  const out = run.stdout + run.stderr;
  assert.match(
    out,
    /'hung cases' › 'waits for an event that never comes' did not finish within its time limit of 0.2 s/,
  );
  assert.match(out, /'hung cases' › 'leaves an interval running' did not finish within its time limit of 0.2 s/);
  assert.match(out, /'hung cases' › 'has a limit of its own' did not finish within its time limit of 0.1 s/);
  assert.match(out, /Passed:\s+1\b/, 'the case after the hung ones ran');
});

limits('every test file takes suite and test from the harness, not from uvu', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const files = readdirSync(join(root, 'test'), { recursive: true })
    .filter((f) => /\.(test|check)\.mjs$/.test(f))
    .map((f) => join('test', f));
  assert.ok(files.length > 20, `found ${files.length} test files`);
  const direct = files.filter((f) =>
    /import\s*\{[^}]*\b(suite|test)\b[^}]*\}\s*from\s*'uvu'/.test(readFileSync(join(root, f), 'utf8')),
  );
  assert.equal(direct, [], "these import suite or test from 'uvu': import them from test/harness.mjs instead");
});

limits.run();
