// The harness's time limits: a hung case fails with its suite's and its own
// name, the run goes on to the next case, and a timer a hung case leaves
// running does not keep the run from ending.
import { spawnSync } from 'node:child_process';
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

limits.run();
