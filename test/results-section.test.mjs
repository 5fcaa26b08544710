// bench/results-section.mjs: the benchmarks that keep one section of
// bench/RESULTS.md each (stress, soak, fuzzing, the Node LTS timers...)
// replace it where it stands, so the file's order survives every run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { putSection } from '../bench/results-section.mjs';
import { suite } from './harness.mjs';

const test = suite('results-section');

function withFile(text, body) {
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-results-'));
  const file = join(dir, 'RESULTS.md');
  try {
    if (text !== null) writeFileSync(file, text);
    body(file);
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BEFORE =
  '# Results\n\nintro\n\n## 1. Timers\n\nrows\n\n## Stress (`make stress`, day 1)\n\n- old\n\n## Fuzzing (`make fuzz`, day 1)\n\n- old runs\n\n## Soak (day 1)\n\n- soak\n';

test('a section is replaced where it stands', () => {
  const after = withFile(BEFORE, (file) => putSection(file, 'Fuzzing', '(`make fuzz`, day 2)\n\n- new runs'));
  assert.is(
    after,
    '# Results\n\nintro\n\n## 1. Timers\n\nrows\n\n## Stress (`make stress`, day 1)\n\n- old\n\n## Fuzzing (`make fuzz`, day 2)\n\n- new runs\n\n## Soak (day 1)\n\n- soak\n',
  );
});

test('a new section goes last', () => {
  const after = withFile(BEFORE, (file) => putSection(file, 'TLS echo', '(day 2)\n\n- rows'));
  assert.ok(after.startsWith(BEFORE.trimEnd()), after);
  assert.ok(after.endsWith('\n\n## TLS echo (day 2)\n\n- rows\n'), after);
});

test('a title names its own section, not a longer one it begins', () => {
  const text = '# R\n\n## Deno and Bun: each host\n\n- a\n\n## Deno and Bun: where the CPU goes\n\n- b\n';
  const after = withFile(text, (file) => putSection(file, 'Deno and Bun: where the CPU goes', '\n\n- c'));
  assert.is(after, '# R\n\n## Deno and Bun: each host\n\n- a\n\n## Deno and Bun: where the CPU goes\n\n- c\n');
  const prefix = withFile('# R\n\n## Fuzzing more\n\n- x\n', (file) => putSection(file, 'Fuzzing', '(d)\n\n- y'));
  assert.is(prefix, '# R\n\n## Fuzzing more\n\n- x\n\n## Fuzzing (d)\n\n- y\n');
});

test('a second copy, as earlier runs appended them, is dropped', () => {
  const text = `${BEFORE}\n## Fuzzing (\`make fuzz\`, day 0)\n\n- stale\n`;
  const after = withFile(text, (file) => putSection(file, 'Fuzzing', '(`make fuzz`, day 2)\n\n- new runs'));
  assert.is((after.match(/## Fuzzing/g) ?? []).length, 1);
  assert.ok(after.indexOf('## Fuzzing') < after.indexOf('## Soak'), after);
});

test('a missing file is created with the section alone', () => {
  const after = withFile(null, (file) => putSection(file, 'Stress', '(day 1)\n\n- rows'));
  assert.is(after, '## Stress (day 1)\n\n- rows\n');
});

test.run();
