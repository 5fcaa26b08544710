// Copies of a protocol's writes for a host that keeps what it writes
// (ts-host/src/io/write-copies.ts): each copy holds the bytes as they were,
// a copy the host kept is never written over until the host finished it,
// and one it finished in place gives its room to the next.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { copyForHost, finished, returned } from '../ts-host/dist/io/write-copies.js';

const test = suite('write copies');

const bytes = (n, value) => new Uint8Array(n).fill(value);
const same = (a, b) => a.buffer === b.buffer && a.byteOffset === b.byteOffset;

test('a copy holds the bytes as they were, whatever the caller does to its array next', () => {
  for (const n of [1, 100, 16 * 1024, 16 * 1024 + 1, 200_000]) {
    const data = bytes(n, 7);
    const copy = copyForHost(data);
    data.fill(9);
    assert.is(copy.length, n);
    assert.ok(
      copy.every((b) => b === 7),
      `${n} bytes`,
    );
    assert.is.not(copy.buffer, data.buffer);
    returned(copy);
  }
});

test('a small copy finished in place gives its room to the next one', () => {
  const first = copyForHost(bytes(64, 1));
  returned(first);
  const second = copyForHost(bytes(64, 2));
  assert.ok(same(first, second), 'the same room');
  returned(second);
});

test('a small copy the host kept is never written over', () => {
  const keptCopies = [];
  for (let i = 0; i < 2000; i++) {
    // More than a slab's worth: later copies move on to a fresh slab.
    const copy = copyForHost(bytes(100, i & 0xff));
    keptCopies.push([copy, i & 0xff]);
    const passing = copyForHost(bytes(100, 0xee));
    returned(passing);
  }
  for (const [copy, value] of keptCopies) assert.ok(copy.every((b) => b === value));
  for (const [copy] of keptCopies) finished(copy);
});

// The spares are the process's: the sizes below are ones no other suite
// writes, so no spare another suite gave back fits them.
const ODD = 5_000_017;

test('a large copy the host kept is not reused until the host finished it', () => {
  const first = copyForHost(bytes(ODD, 1));
  returned(first);
  const second = copyForHost(bytes(ODD, 2));
  assert.is(second.buffer, first.buffer, 'a spare, reused after an in-place write');
  // Kept: no returned().
  const third = copyForHost(bytes(ODD, 3));
  assert.is.not(third.buffer, second.buffer, 'the kept one is the host’s until finished');
  assert.ok(second.every((b) => b === 2));
  returned(third);
  finished(second);
  const fourth = copyForHost(bytes(ODD, 4));
  const fifth = copyForHost(bytes(ODD, 5));
  assert.ok(
    [fourth.buffer, fifth.buffer].includes(second.buffer) && [fourth.buffer, fifth.buffer].includes(third.buffer),
    'both spares back in use',
  );
  assert.ok(fourth.every((b) => b === 4) && fifth.every((b) => b === 5));
  returned(fourth);
  returned(fifth);
});

test('a spare more than twice the size of a write is not used for it', () => {
  const big = copyForHost(bytes(30_000_000, 1));
  returned(big);
  const small = copyForHost(bytes(12_000_000, 3));
  assert.is.not(small.buffer, big.buffer, 'a kept copy pins at most twice its bytes');
  assert.is(small.buffer.byteLength, 12_000_000);
  returned(small);
  const half = copyForHost(bytes(16_000_000, 2));
  assert.is(half.buffer, big.buffer, 'within twice its size: that spare');
  returned(half);
});

test.run();
