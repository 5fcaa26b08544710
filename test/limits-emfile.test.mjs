// Accepting survives descriptor exhaustion: an echo server in a child
// process with `ulimit -n 64` (test/fixtures/emfile-echo.mjs) is given
// connections until an accept fails. Then the connections it has keep
// being served, a few close, and accepting resumes: the connection that
// waited in the backlog and new ones are served. The failure is reported
// once for the episode, however many retries failed. On the selector and
// both completion implementations (the native one retries with the same
// back-off; on node:net, Node's listener sheds the connection it cannot
// accept and reports nothing, so the client sees a close instead).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './harness.mjs';
import { HOST, NET_COMPLETION, backendLabel } from './helpers.mjs';
import { LIMIT_MS, within } from './io-helpers.mjs';

const FIXTURE = fileURLToPath(new URL('./fixtures/emfile-echo.mjs', import.meta.url));
/** Descriptors the child may have: room for a few dozen connections beside Node's own. */
const DESCRIPTORS = 64;

/** The child, its lines as they come, and a wait for the first line matching a pattern. */
function startServer(backend) {
  const child = spawn(
    'bash',
    ['-c', `ulimit -n ${DESCRIPTORS} && exec "$0" "$@"`, process.execPath, FIXTURE, backend],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines = [];
  const waiters = [];
  let buffered = '';
  child.stdout.on('data', (data) => {
    buffered += data;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      for (const w of [...waiters]) w();
    }
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  /** The first line matching `pattern` (already printed or to come). */
  const line = (pattern) =>
    new Promise((resolve) => {
      const check = () => {
        const found = lines.find((l) => pattern.test(l));
        if (found === undefined) return;
        waiters.splice(waiters.indexOf(check), 1);
        resolve(found);
      };
      waiters.push(check);
      check();
    });
  return { child, lines, line, exited };
}

/** A client connection: `roundTrip(text)` resolves true once the echo came back, false if the server closed it first. */
function client(port) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let closed = false;
  const onClosed = new Set();
  socket.on('close', () => {
    closed = true;
    for (const fn of onClosed) fn();
  });
  const roundTrip = (text) =>
    new Promise((resolve) => {
      let got = '';
      const done = (ok) => {
        socket.off('data', onData);
        onClosed.delete(onClose);
        resolve(ok);
      };
      const onData = (data) => {
        got += data;
        if (got.length >= text.length) done(got === text);
      };
      const onClose = () => done(false);
      if (closed) return resolve(false);
      socket.on('data', onData);
      onClosed.add(onClose);
      socket.write(text);
    });
  return { socket, roundTrip };
}

/**
 * A new connection that is served. On node:net one arriving before the
 * server has let go of the closed ones' descriptors is shed (closed at
 * once): try again until one gets in. Elsewhere it waits in the backlog.
 */
async function servedClient(port, text, backend) {
  for (;;) {
    const c = client(port);
    if (await c.roundTrip(text)) return c;
    c.socket.destroy();
    assert.is(backend, NET_COMPLETION, 'only node:net sheds a connection');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** How many descriptors process `pid` has open. */
const descriptors = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** Resolves once `condition()` holds, checking every 10 ms; fails naming `what()` after LIMIT_MS. */
async function waitUntil(condition, what) {
  const giveUpAt = performance.now() + LIMIT_MS;
  while (!condition()) {
    if (performance.now() > giveUpAt) throw new Error(`${what()}: not within ${LIMIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const test = suite('accepting survives descriptor exhaustion', {}, { timeLimitMs: 4 * LIMIT_MS });

// The child is a Node process: the selector and both completion implementations run there.
const BACKENDS = HOST === 'node' ? ['selector', 'completion', NET_COMPLETION] : [];

for (const backend of BACKENDS) {
  test(`${backendLabel(backend)}: old connections are served, new ones wait, and get in once descriptors are free`, async () => {
    const server = startServer(backend);
    const port = Number((await within(server.line(/^port \d+$/), 'the server listening')).slice(5));
    const reported = server.line(/^report /);
    const open = [];
    let waiting = null;
    try {
      // One at a time, until one is not served: the accept that failed.
      for (let i = 0; waiting === null; i++) {
        assert.ok(i < 4 * DESCRIPTORS, 'an accept failed before the limit could be passed');
        const c = client(port);
        const echoed = c.roundTrip(`hello ${i}\n`);
        const first = await within(
          Promise.race([echoed.then((ok) => (ok ? 'served' : 'closed')), reported.then(() => 'reported')]),
          `connection ${i}`,
        );
        if (first === 'served') open.push(c);
        else waiting = { ...c, echoed, first };
      }
      assert.ok(open.length > 10, `${open.length} connections were served first`);
      if (backend === NET_COMPLETION) assert.is(waiting.first, 'closed', "Node's listener sheds what it cannot accept");
      else assert.is(waiting.first, 'reported');

      // The connections already open are served as ever.
      for (const [i, c] of open.entries()) assert.ok(await within(c.roundTrip(`still ${i}\n`), `old connection ${i}`));

      // Room again: the one that waited in the backlog is served, and so are new ones.
      const full = descriptors(server.child.pid);
      for (const c of open.splice(0, 5)) c.socket.destroy();
      if (backend !== NET_COMPLETION)
        assert.ok(await within(waiting.echoed, 'the connection that waited'), 'served once accepted');
      waiting.socket.destroy();
      // The new ones come once the server has let go of all six: an accept
      // can then not fail again, however late the server saw the closes (one
      // seen before the others would let the waiting connection in, and a
      // new one after it could start a second episode).
      await waitUntil(
        () => descriptors(server.child.pid) <= full - 5,
        () => `the server closing the six (${descriptors(server.child.pid)} descriptors, ${full} at the limit)`,
      );
      for (let i = 0; i < 3; i++)
        open.push(await within(servedClient(port, `new ${i}\n`, backend), `new connection ${i}`));
    } finally {
      for (const c of open) c.socket.destroy();
      waiting?.socket.destroy();
      server.child.stdin.end();
    }
    assert.is(await within(server.exited, 'the server exiting'), 0);
    const result = JSON.parse(server.lines[server.lines.length - 1]);
    if (backend === NET_COMPLETION) {
      assert.is(result.reports.length, 0, 'Node reports nothing');
    } else {
      assert.is(result.reports.length, 1, `one report for the episode: ${result.reports}`);
      assert.match(
        result.reports[0],
        /^accept failed \((EMFILE|ENFILE)\): the server serves its open connections and retries/,
      );
      assert.is(result.acceptsPaused, 1);
    }
    assert.is(result.connectionsRefused, 0);
  });
}

test.run();
