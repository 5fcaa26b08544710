// Bad input and failing callbacks: each gets a clear error, and nothing else
// breaks.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import {
  createLoop,
  LoopClosedError,
  LoopRunningError,
  LoopStoppedError,
  WasmloopError,
} from '../ts-host/dist/index.js';
import { capture, freshLoop } from './helpers.mjs';

function throwsWith(fn, ErrorClass, pattern) {
  try {
    fn();
  } catch (error) {
    assert.instance(error, ErrorClass, `expected ${ErrorClass.name}, got ${error}`);
    assert.match(error.message, pattern);
    return;
  }
  assert.unreachable(`expected ${ErrorClass.name}`);
}

async function rejectsWith(promise, ErrorClass, pattern) {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, ErrorClass, `expected ${ErrorClass.name}, got ${error}`);
    assert.match(error.message, pattern);
    return;
  }
  assert.unreachable(`expected ${ErrorClass.name}`);
}

// ------------------------------------------------------------ bad input

const input = suite('bad input');
freshLoop(input);

input('NaN or a non-number delay is a TypeError naming the argument', ({ loop }) => {
  const cb = () => {};
  throwsWith(() => loop.callLater(NaN, cb), TypeError, /callLater: delayMs must be a number.*NaN/);
  throwsWith(() => loop.callLater('10', cb), TypeError, /callLater: delayMs .*string "10"/);
  throwsWith(() => loop.callLater(undefined, cb), TypeError, /delayMs.*undefined/);
  throwsWith(() => loop.callLater(10n, cb), TypeError, /delayMs.*bigint 10/);
  throwsWith(() => loop.callAt(NaN, cb), TypeError, /callAt: whenMs must be a number/);
  throwsWith(() => loop.callAt({}, cb), TypeError, /whenMs.*an object/);
  throwsWith(() => loop.sleep(NaN), TypeError, /sleep: ms must be a number/);
  assert.is(loop.stats().timersPending, 0, 'nothing was scheduled');
});

input('a non-function callback is a TypeError naming the argument', ({ loop }) => {
  throwsWith(() => loop.callSoon('f'), TypeError, /callSoon: callback must be a function, got string "f"/);
  throwsWith(() => loop.callLater(1, null), TypeError, /callLater: callback must be a function, got null/);
  throwsWith(() => loop.callAt(1, 42), TypeError, /callAt: callback must be a function, got number 42/);
  assert.is(loop.stats().readyPending + loop.stats().timersPending, 0);
});

input('bad input leaves the loop working and loses no callback', async ({ loop }) => {
  const ran = [];
  loop.callSoon(() => ran.push(1));
  assert.throws(() => loop.callLater(NaN, () => ran.push('bad')));
  assert.throws(() => loop.callSoon(undefined));
  loop.callLater(1, () => ran.push(2));
  await loop.runUntilComplete(() => loop.sleep(5));
  assert.equal(ran, [1, 2]);
});

input('runUntilComplete rejects a non-promise argument', async ({ loop }) => {
  await rejectsWith(loop.runUntilComplete(42), TypeError, /promiseOrAsyncFn must be a promise.*number 42/);
  await rejectsWith(loop.runUntilComplete(null), TypeError, /got null/);
  assert.not.ok(loop.isRunning());
});

input('setExceptionHandler rejects what is not a function or null', ({ loop }) => {
  throwsWith(() => loop.setExceptionHandler('log'), TypeError, /handler must be a function or null/);
  loop.setExceptionHandler(null);
});

input('cancel twice, after firing, and after close are no-ops', async ({ loop }) => {
  const ran = [];
  const a = loop.callLater(1, () => ran.push('a'));
  a.cancel();
  a.cancel();
  assert.ok(a.cancelled());
  const b = loop.callSoon(() => ran.push('b'));
  await loop.runUntilComplete(() => loop.sleep(5));
  b.cancel();
  b.cancel();
  assert.equal(ran, ['b']);
  // A handle that ran and was cancelled later cannot touch its reused slot.
  const c = loop.callSoon(() => ran.push('c'));
  b.cancel();
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(ran, ['b', 'c']);
  const d = loop.callLater(5, () => ran.push('d'));
  await loop.close();
  d.cancel();
  c.cancel();
});

input('a stale handle never cancels the callback that reuses its slot', async ({ loop }) => {
  const ran = [];
  const stale = [];
  for (let round = 0; round < 20; round++) {
    const handles = [];
    for (let i = 0; i < 50; i++) handles.push(loop.callSoon(() => ran.push(`${round}:${i}`)));
    await loop.runUntilComplete(() => loop.sleep(0));
    stale.push(...handles);
    // Every old handle cancels after its slot has been reused.
    const fresh = loop.callSoon(() => ran.push(`fresh ${round}`));
    for (const h of stale) h.cancel();
    await loop.runUntilComplete(() => loop.sleep(0));
    assert.ok(ran.includes(`fresh ${round}`), `round ${round}: a stale handle cancelled a new callback`);
    assert.not.ok(fresh.cancelled());
  }
  assert.is(ran.length, 20 * 51);
});

// ---------------------------------------------------------- closed loop

const closed = suite('closed loop');

closed('every operation on a closed loop throws LoopClosedError', async () => {
  const loop = await createLoop();
  await loop.close();
  assert.ok(loop.isClosed());
  const cb = () => {};
  throwsWith(() => loop.callSoon(cb), LoopClosedError, /callSoon: the event loop is closed/);
  throwsWith(() => loop.callLater(1, cb), LoopClosedError, /callLater/);
  throwsWith(() => loop.callAt(1, cb), LoopClosedError, /callAt/);
  throwsWith(() => loop.sleep(1), LoopClosedError, /sleep/);
  throwsWith(() => loop.time(), LoopClosedError, /time/);
  throwsWith(() => loop.stop(), LoopClosedError, /stop/);
  throwsWith(() => loop.stats(), LoopClosedError, /stats/);
  await rejectsWith(loop.runForever(), LoopClosedError, /runForever/);
  await rejectsWith(loop.runUntilComplete(Promise.resolve()), LoopClosedError, /runUntilComplete/);
  assert.instance(new LoopClosedError('x'), WasmloopError);
});

closed('close is idempotent and drops pending callbacks', async () => {
  const loop = await createLoop();
  let ran = false;
  loop.callSoon(() => {
    ran = true;
  });
  loop.callLater(1, () => {
    ran = true;
  });
  await loop.close();
  await loop.close();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.not.ok(ran);
});

closed('a running loop cannot be closed', async () => {
  const loop = await createLoop();
  let error;
  await loop.runUntilComplete(async () => {
    await loop.close().catch((e) => {
      error = e;
    });
  });
  assert.instance(error, LoopRunningError);
  assert.match(error.message, /close: the event loop is already running/);
  assert.not.ok(loop.isClosed());
  await loop.close();
});

// -------------------------------------------------------------- running

const running = suite('running');
freshLoop(running);

running('runUntilComplete and runForever while running reject with LoopRunningError', async ({ loop }) => {
  const errors = [];
  await loop.runUntilComplete(async () => {
    await loop.runUntilComplete(Promise.resolve(1)).catch((e) => errors.push(e));
    await loop.runForever().catch((e) => errors.push(e));
  });
  assert.is(errors.length, 2);
  for (const e of errors) assert.instance(e, LoopRunningError);
  assert.match(errors[0].message, /runUntilComplete: the event loop is already running/);
  assert.match(errors[1].message, /runForever/);
});

running(
  'runUntilComplete rejects with the error of a rejected promise, and the loop stays usable',
  async ({ loop }) => {
    const boom = new Error('boom');
    await rejectsWith(
      loop.runUntilComplete(async () => {
        await loop.sleep(1);
        throw boom;
      }),
      Error,
      /^boom$/,
    );
    await rejectsWith(
      loop.runUntilComplete(() => {
        throw new RangeError('sync');
      }),
      RangeError,
      /sync/,
    );
    assert.is(await loop.runUntilComplete(() => loop.sleep(1, 'ok')), 'ok');
  },
);

running('stop() before the promise settles rejects runUntilComplete with LoopStoppedError', async ({ loop }) => {
  loop.callLater(1, () => loop.stop());
  await rejectsWith(
    loop.runUntilComplete(new Promise(() => {})),
    LoopStoppedError,
    /stopped before the promise settled/,
  );
  assert.not.ok(loop.isRunning());
  // The abandoned promise must not stop a later run.
  assert.is(await loop.runUntilComplete(() => loop.sleep(2, 'next')), 'next');
});

running('a promise that settles after its run ended does not stop a later run', async ({ loop }) => {
  let settleLate;
  const late = new Promise((resolve) => {
    settleLate = resolve;
  });
  loop.callLater(1, () => loop.stop());
  await loop.runUntilComplete(late).catch(() => {});
  const done = loop.runForever();
  settleLate('now');
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(loop.isRunning(), 'the late settlement did not stop runForever');
  loop.stop();
  await done;
});

running('stop() called before runForever: the next run does one iteration and returns', async ({ loop }) => {
  const ran = [];
  loop.callSoon(() => ran.push('first'));
  loop.stop();
  await loop.runForever();
  assert.equal(ran, ['first']);
  assert.not.ok(loop.isRunning());
});

running('stop() finishes the current batch, later callbacks wait for the next run', async ({ loop }) => {
  const ran = [];
  loop.callSoon(() => {
    ran.push('a');
    loop.stop();
    loop.callSoon(() => ran.push('next run'));
  });
  loop.callSoon(() => ran.push('b'));
  await loop.runForever();
  assert.equal(ran, ['a', 'b']);
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(ran, ['a', 'b', 'next run']);
});

// ----------------------------------------------------------- exceptions

const exceptions = suite('exceptions in callbacks');
freshLoop(exceptions);

exceptions(
  'a throwing callback goes to the exception handler; the loop and other callbacks go on',
  async ({ loop }) => {
    const contexts = [];
    const ran = [];
    loop.setExceptionHandler((l, context) => contexts.push([l, context]));
    const boom = new Error('boom');
    function failing() {
      throw boom;
    }
    loop.callSoon(failing);
    loop.callSoon(() => ran.push('after'));
    loop.callLater(1, () => {
      throw new TypeError('timer');
    });
    loop.callLater(2, () => ran.push('timer after'));
    await loop.runUntilComplete(() => loop.sleep(5));
    assert.equal(ran, ['after', 'timer after']);
    assert.is(contexts.length, 2);
    const [l, context] = contexts[0];
    assert.is(l, loop);
    assert.is(context.error, boom);
    assert.is(context.callback, failing);
    assert.match(context.message, /Exception in callback failing/);
    assert.type(context.handle.cancel, 'function');
    assert.instance(contexts[1][1].error, TypeError);
  },
);

exceptions('the default handler logs with console.error and the context', async ({ loop }) => {
  const logged = await capture('error', async () => {
    loop.callSoon(function namedCallback() {
      throw new Error('default');
    });
    await loop.runUntilComplete(() => loop.sleep(0));
  });
  assert.is(logged.length, 1);
  assert.match(logged[0][0], /Exception in callback namedCallback/);
  assert.is(logged[0][1].message, 'default');
});

exceptions('a throwing exception handler is logged and the loop goes on', async ({ loop }) => {
  loop.setExceptionHandler(() => {
    throw new Error('handler broke');
  });
  const ran = [];
  const logged = await capture('error', async () => {
    loop.callSoon(() => {
      throw new Error('first');
    });
    loop.callSoon(() => ran.push('second'));
    await loop.runUntilComplete(() => loop.sleep(0));
  });
  assert.equal(ran, ['second']);
  assert.match(logged[0][0], /exception handler threw/);
  assert.is(loop.getExceptionHandler() !== null, true);
  loop.setExceptionHandler(null);
  assert.is(loop.getExceptionHandler(), null);
});

exceptions('an exception in a callback with arguments reports that callback', async ({ loop }) => {
  const contexts = [];
  loop.setExceptionHandler((_, c) => contexts.push(c));
  function withArgs(a) {
    throw new Error(`got ${a}`);
  }
  loop.callLater(0, withArgs, 7);
  await loop.runUntilComplete(() => loop.sleep(2));
  assert.is(contexts[0].callback, withArgs);
  assert.is(contexts[0].error.message, 'got 7');
});

exceptions(
  'a callback whose name getter throws, or a revoked Proxy, is reported; the loop and its server go on',
  async ({ loop }) => {
    const contexts = [];
    loop.setExceptionHandler((_, context) => contexts.push(context));
    const server = await loop.runUntilComplete(() => loop.createServer((conn) => conn.close(), { port: 0 }));
    function badName() {
      throw new Error('inside');
    }
    Object.defineProperty(badName, 'name', {
      get() {
        throw new Error('name getter');
      },
    });
    const { proxy, revoke } = Proxy.revocable(function target() {}, {});
    revoke();
    const ran = [];
    loop.callSoon(badName);
    loop.callSoon(proxy);
    loop.callLater(0, badName, 'with an argument');
    loop.callSoon(() => ran.push('after'));
    await loop.runUntilComplete(() => loop.sleep(1));
    assert.equal(ran, ['after']);
    assert.is(contexts.length, 3);
    assert.is(contexts[0].error.message, 'inside');
    assert.match(contexts[0].message, /Exception in callback <unnamed>/);
    assert.instance(contexts[1].error, TypeError, 'calling a revoked Proxy throws a TypeError');
    assert.is(contexts[2].error.message, 'inside');
    assert.not.ok(loop.isClosed());
    // The server still serves.
    const conn = await loop.runUntilComplete(() => loop.createConnection({ port: server.address().port }));
    assert.is(await loop.runUntilComplete(() => conn.read()), null);
    conn.close();
    server.close();
  },
);

exceptions('a throwing name getter does not break debug mode or recording', async () => {
  for (const options of [{ debug: true, slowCallbackMs: 0 }, { record: true }]) {
    const logger = { warn() {}, error() {} };
    const loop = await createLoop({ ...options, logger });
    const contexts = [];
    loop.setExceptionHandler((_, context) => contexts.push(context));
    const badName = () => {
      throw new Error('inside');
    };
    Object.defineProperty(badName, 'name', {
      get() {
        throw new Error('name getter');
      },
    });
    loop.callSoon(badName);
    await loop.runUntilComplete(() => loop.sleep(0));
    assert.is(contexts.length, 1, JSON.stringify(options));
    assert.is(contexts[0].error.message, 'inside');
    if (options.record) assert.equal(loop.trace().callbacks[0], ['callSoon', '<unnamed>']);
    await loop.close();
  }
});

exceptions('callbacks scheduled with arguments are called as plain functions: this is undefined', async () => {
  for (const debug of [false, true]) {
    const loop = await createLoop({ debug });
    const seen = [];
    function record(tag) {
      seen.push([this, tag]);
    }
    loop.callSoon(record, 'callSoon');
    loop.callLater(0, record, 'callLater');
    loop.callAt(loop.time(), record, 'callAt');
    loop.callSoon(record);
    await loop.runUntilComplete(() => loop.sleep(1));
    await loop.close();
    // Queued callbacks first, then the timers, in scheduling order.
    assert.equal(
      seen,
      [
        [undefined, 'callSoon'],
        [undefined, undefined],
        [undefined, 'callLater'],
        [undefined, 'callAt'],
      ],
      `debug ${debug}`,
    );
  }
});

// --------------------------------------------------------- options objects

const options = suite('options objects');
freshLoop(options);

options('every options object rejects unknown keys, naming the key and the one meant', async ({ loop }) => {
  const handler = () => {};
  const factory = () => ({});
  const cases = [
    [
      'createServer',
      () => loop.createServer(handler, { port: 0, reuse_port: true }),
      /createServer: unknown option 'reuse_port' \(did you mean 'reusePort'\?\)/,
    ],
    [
      'createConnection',
      () => loop.createConnection({ port: 1, hostname: 'localhost' }),
      /createConnection: unknown option 'hostname' \(did you mean 'host'\?\)/,
    ],
    [
      'createProtocolServer',
      () => loop.createProtocolServer(factory, { port: 0, backlg: 5 }),
      /createProtocolServer: unknown option 'backlg' \(did you mean 'backlog'\?\)/,
    ],
    [
      'createProtocolConnection',
      () => loop.createProtocolConnection(factory, { port: 1, flowControl: 5 }),
      /createProtocolConnection: unknown option 'flowControl' \(known: /,
    ],
    [
      'createDatagramEndpoint',
      () => loop.createDatagramEndpoint(factory, { local_addr: { port: 0 } }),
      /createDatagramEndpoint: unknown option 'local_addr' \(did you mean 'localAddress'\?\)/,
    ],
    [
      'localAddress',
      () => loop.createDatagramEndpoint(factory, { localAddress: { portt: 0 } }),
      /createDatagramEndpoint: localAddress: unknown option 'portt' \(did you mean 'port'\?\)/,
    ],
    [
      'remoteAddress',
      () => loop.createDatagramEndpoint(factory, { remoteAddress: { port: 9, hostt: 'x' } }),
      /createDatagramEndpoint: remoteAddress: unknown option 'hostt' \(did you mean 'host'\?\)/,
    ],
  ];
  for (const [_name, call, pattern] of cases) await rejectsWith(call(), TypeError, pattern);
  assert.is(loop.stats().watchers, 0, 'nothing was opened');
});

options('ssl points to tls; a bad tls option is refused before anything opens', async ({ loop }) => {
  const handler = () => {};
  const factory = () => ({});
  await rejectsWith(
    loop.createServer(handler, { port: 0, ssl: {} }),
    TypeError,
    /createServer: unknown option 'ssl' \(did you mean 'tls'\?\)/,
  );
  await rejectsWith(loop.createConnection({ port: 1, ssl: true }), TypeError, /did you mean 'tls'/);
  const refusals = [
    [() => loop.createServer(handler, { port: 0, tls: {} }), TypeError, /createServer: tls needs a key and a cert/],
    [
      () => loop.createServer(handler, { port: 0, tls: true }),
      TypeError,
      /createServer: tls must be an object \{ key, cert/,
    ],
    [
      () => loop.createProtocolServer(factory, { port: 0, tls: { cert: 'x', key: 'y', ssl_version: 3 } }),
      TypeError,
      /createProtocolServer: tls: unknown option 'ssl_version'/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { server_hostname: 'x' } }),
      TypeError,
      /createConnection: tls: unknown option 'server_hostname' \(did you mean 'servername'\?\)/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { ALPNProtocols: ['h2'] } }),
      TypeError,
      /did you mean 'alpnProtocols'/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { alpnProtocols: 'h2' } }),
      TypeError,
      /tls.alpnProtocols must be a non-empty list/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { handshakeTimeoutMs: 0 } }),
      RangeError,
      /tls.handshakeTimeoutMs must be a number of ms > 0/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { rejectUnauthorized: 'no' } }),
      TypeError,
      /tls.rejectUnauthorized must be a boolean/,
    ],
    [
      () => loop.createConnection({ port: 1, tls: { cert: 'x' } }),
      TypeError,
      /a client certificate needs both tls.cert and tls.key/,
    ],
    [() => loop.createProtocolConnection(factory, { port: 1, tls: 'yes' }), TypeError, /tls must be true or an object/],
  ];
  for (const [refuse, type, pattern] of refusals) await rejectsWith(refuse(), type, pattern);
  assert.is(loop.stats().watchers, 0, 'nothing was opened');
});

options('the virtual-time runs and createLoop reject unknown keys', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  throwsWith(() => loop.runAll({ limt: 5 }), TypeError, /runAll: unknown option 'limt' \(did you mean 'limit'\?\)/);
  throwsWith(() => loop.runUntilIdle({ max: 5 }), TypeError, /runUntilIdle: unknown option 'max' \(known: limit\)/);
  throwsWith(() => loop.advance(5, { limit: 5, extra: 1 }), TypeError, /advance: unknown option 'extra'/);
  await rejectsWith(loop.runAllAsync({ limt: 5 }), TypeError, /runAll: unknown option 'limt'/);
  await rejectsWith(loop.runUntilIdleAsync({ limt: 5 }), TypeError, /runUntilIdle: unknown option 'limt'/);
  await rejectsWith(loop.advanceAsync(1, { limt: 5 }), TypeError, /advance: unknown option 'limt'/);
  assert.is(loop.runAll({ limit: 5 }), 0, 'known keys still work');
  await loop.close();
  await rejectsWith(
    createLoop({ loger: console }),
    TypeError,
    /createLoop: unknown option 'loger' \(did you mean 'logger'\?\)/,
  );
  await rejectsWith(createLoop({ slow_callback_ms: 1 }), TypeError, /did you mean 'slowCallbackMs'/);
});

input.run();
closed.run();
running.run();
exceptions.run();
options.run();
