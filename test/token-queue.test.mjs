// TokenQueue (ts-host/src/backends/token-queue.ts): the I/O tokens a
// built-in backend has to report, each at most once, oldest first. take()
// hands out views it reuses, so every case reads a result before the next
// take, as the core does.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { TokenQueue } from '../ts-host/dist/backends/token-queue.js';

const test = suite('token queue');

const taken = (queue, max) => Array.from(queue.take(max));

test('hands tokens out oldest first, each once', () => {
  const q = new TokenQueue();
  for (const t of [5, 3, 9]) q.push(t);
  q.push(3);
  assert.is(q.length, 3);
  assert.equal(taken(q, 10), [5, 3, 9]);
  assert.equal(taken(q, 10), []);
  q.push(3);
  assert.equal(taken(q, 10), [3], 'a token taken can be queued again');
});

test('take(max) leaves the rest queued, in order', () => {
  const q = new TokenQueue();
  for (let t = 1; t <= 5; t++) q.push(t);
  assert.equal(taken(q, 2), [1, 2]);
  q.push(1);
  assert.equal(taken(q, 2), [3, 4]);
  assert.equal(taken(q, 2), [5, 1]);
  assert.equal(taken(q, 2), []);
});

test('drop removes a queued token and keeps the order of the others', () => {
  const q = new TokenQueue();
  for (const t of [4, 7, 2, 7]) q.push(t);
  q.drop(7);
  q.drop(11);
  assert.equal(taken(q, 10), [4, 2]);
  q.push(7);
  assert.equal(taken(q, 10), [7], 'a dropped token can be queued again');
});

test('takes of the same length each hold their own tokens', () => {
  // take() reuses one view per length: each result must still be what that take removed.
  const q = new TokenQueue();
  for (let round = 0; round < 100; round++) {
    const want = [round * 3 + 1, round * 3 + 2];
    for (const t of want) q.push(t);
    assert.equal(taken(q, 2), want);
  }
  q.push(8);
  const one = q.take(1);
  assert.equal(Array.from(one), [8]);
  q.push(9);
  assert.equal(Array.from(q.take(1)), [9]);
});

test('grows past its first buffers with tokens and results intact', () => {
  const q = new TokenQueue();
  q.push(1);
  assert.equal(taken(q, 1), [1]);
  const many = Array.from({ length: 1000 }, (_, i) => 5000 - i * 3);
  for (const t of many) q.push(t);
  assert.is(q.length, 1000);
  assert.equal(taken(q, 600), many.slice(0, 600));
  assert.equal(taken(q, 1), [many[600]]);
  assert.equal(taken(q, 1000), many.slice(601));
  q.push(70_000);
  assert.equal(taken(q, 1), [70_000], 'a token past the de-duplication table grows it');
});

test.run();
