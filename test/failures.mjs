// Passes uvu's output through unchanged and, when it ends, prints every
// failed case again, with the file it is in: a long run's failures are
// otherwise printed where they happened, hundreds of lines above its end,
// which is all a CI log shows.
//
//   node --expose-gc node_modules/uvu/bin.js test ... 2>&1 | node test/failures.mjs
//
// The pipeline's status stays uvu's (the Makefile runs bash with pipefail);
// this script always exits 0 itself.
import { createInterface } from 'node:readline';

/** uvu colours its output; the blocks are found on the plain text. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point.
const ANSI = /\u001b\[[0-9;]*m/g;
/** Lines kept per failure: the message, the diff and the first frames. */
const MAX_LINES = 30;

const failures = [];
let file = '';
let current = null;

const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
for await (const line of lines) {
  process.stdout.write(`${line}\n`);
  const plain = line.replace(ANSI, '');
  if (/^\S.*\.(test|check)\.mjs$/.test(plain)) {
    file = plain;
    current = null;
  } else if (/^\s+FAIL\s/.test(plain)) {
    current = [`${file}: ${plain.trim()}`];
    failures.push(current);
  } else if (/^\s+Total:\s/.test(plain) || /\(\d+ \/ \d+\)\s*$/.test(plain)) {
    // The run's summary, or the next suite's line of results.
    current = null;
  } else if (current !== null && current.length < MAX_LINES && plain.trim() !== '') {
    current.push(plain);
  }
}
if (failures.length > 0) {
  process.stdout.write(`\n${failures.length} failed case(s), as printed above:\n\n`);
  for (const failure of failures) process.stdout.write(`${failure.join('\n')}\n\n`);
}
