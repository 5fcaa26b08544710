// Timer scenarios: small programs against Node's timer API, each with the
// order its callbacks must run in. test/virtual.test.mjs runs every one on
// Node's own timers, @sinonjs/fake-timers, and `loop.timers` on the virtual
// and the real backends. Each calls `done()` from its last callback.
//
// Node's real timers run here too, so the order of two timers must not
// depend on how late either runs: timers that race are scheduled in the same
// callback (their deadlines count from one clock reading) with different
// delays, never a timer against one scheduled later from a callback that
// may itself run late.
export const scenarios = [
  {
    name: 'timeouts run in delay order',
    expect: ['b', 'c', 'a'],
    run(t, log, done) {
      t.setTimeout(() => {
        log('a');
        done();
      }, 30);
      t.setTimeout(() => log('b'), 10);
      t.setTimeout(() => log('c'), 20);
    },
  },
  {
    name: 'equal delays run in scheduling order',
    expect: ['0', '1', '2', '3', '4'],
    run(t, log, done) {
      for (let i = 0; i < 5; i++) {
        t.setTimeout(() => {
          log(String(i));
          if (i === 4) done();
        }, 10);
      }
    },
  },
  {
    name: 'an interval cleared after three ticks',
    expect: ['tick 1', 'tick 2', 'tick 3', 'timeout'],
    run(t, log, done) {
      let n = 0;
      const interval = t.setInterval(() => {
        log(`tick ${++n}`);
        // Due between tick 3 and the tick 4 that clearing prevents.
        if (n === 2) {
          t.setTimeout(() => {
            log('timeout');
            done();
          }, 15);
        }
        if (n === 3) t.clearInterval(interval);
      }, 10);
    },
  },
  {
    name: 'immediates run before timers',
    expect: ['immediate 1', 'immediate 2', 'timeout'],
    run(t, log, done) {
      t.setTimeout(() => {
        log('timeout');
        done();
      }, 10);
      t.setImmediate(() => log('immediate 1'));
      t.setImmediate(() => log('immediate 2'));
    },
  },
  {
    name: 'nested scheduling from inside a timer',
    expect: ['a', 'immediate from a', 'timeout from a', 'd'],
    run(t, log, done) {
      t.setTimeout(() => {
        log('a');
        t.setTimeout(() => log('timeout from a'), 10);
        t.setImmediate(() => log('immediate from a'));
        t.setTimeout(() => {
          log('d');
          done();
        }, 20);
      }, 10);
    },
  },
  {
    name: 'a timer cancelled from inside another callback never runs',
    expect: ['canceller', 'last'],
    run(t, log, done) {
      const victim = t.setTimeout(() => log('victim'), 20);
      t.setTimeout(() => {
        log('canceller');
        t.clearTimeout(victim);
      }, 10);
      t.setTimeout(() => {
        log('last');
        done();
      }, 30);
    },
  },
  {
    name: 'an immediate cleared by an earlier immediate never runs',
    expect: ['first', 'timeout'],
    run(t, log, done) {
      let second = null;
      t.setImmediate(() => {
        log('first');
        t.clearImmediate(second);
      });
      second = t.setImmediate(() => log('second'));
      t.setTimeout(() => {
        log('timeout');
        done();
      }, 10);
    },
  },
  {
    name: 'extra arguments reach the callback; a timer cleared by its numeric id',
    expect: ['x y', 'end'],
    run(t, log, done) {
      t.setTimeout((a, b) => log(`${a} ${b}`), 5, 'x', 'y');
      const byId = t.setTimeout(() => log('cleared by id'), 10);
      t.clearTimeout(+byId);
      t.setTimeout(() => {
        log('end');
        done();
      }, 20);
    },
  },
  {
    name: 'an interval clears itself from its own callback',
    expect: ['1', '2', 'after'],
    run(t, log, done) {
      let n = 0;
      const interval = t.setInterval(() => {
        log(String(++n));
        if (n === 2) {
          t.clearInterval(interval);
          t.setTimeout(() => {
            log('after');
            done();
          }, 15);
        }
      }, 10);
    },
  },
  {
    name: 'bad delays become 1 ms, as in Node',
    expect: ['NaN', 'negative', 'string 8', 'later'],
    run(t, log, done) {
      t.setTimeout(() => log('string 8'), '8');
      t.setTimeout(() => log('NaN'), NaN);
      t.setTimeout(() => log('negative'), -50);
      t.setTimeout(() => {
        log('later');
        done();
      }, 20);
    },
  },
];
