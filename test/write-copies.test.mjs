// Copies of a protocol's writes for a host that keeps what it writes
// (ts-host/src/io/write-copies.ts): each copy holds the bytes as they were,
// a copy the host kept is never written over, and one it finished in place
// gives its room to the next.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { copyForHost, kept, returned } from '../ts-host/dist/io/write-copies.js';

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
    kept(copy);
    keptCopies.push([copy, i & 0xff]);
    const passing = copyForHost(bytes(100, 0xee));
    returned(passing);
  }
  for (const [copy, value] of keptCopies) assert.ok(copy.every((b) => b === value));
});

test('a large copy reuses one spare while writes finish in place, and a new one once the host kept it', () => {
  const first = copyForHost(bytes(40_000, 1));
  returned(first);
  const second = copyForHost(bytes(40_000, 2));
  assert.is(second.buffer, first.buffer, 'the spare, reused');
  kept(second);
  const third = copyForHost(bytes(40_000, 3));
  assert.is.not(third.buffer, second.buffer, 'the kept spare is the host’s now');
  assert.ok(second.every((b) => b === 2));
  returned(third);
});

test('a spare more than twice the size of a write is not used for it', () => {
  const big = copyForHost(bytes(100_000, 1));
  returned(big);
  const half = copyForHost(bytes(60_000, 2));
  assert.is(half.buffer, big.buffer, 'within twice its size: the spare');
  returned(half);
  const small = copyForHost(bytes(20_000, 3));
  assert.is.not(small.buffer, big.buffer, 'a kept copy pins at most twice its bytes');
  assert.is(small.buffer.byteLength, 20_000);
  returned(small);
});

test.run();
