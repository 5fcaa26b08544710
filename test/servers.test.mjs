// Nothing leaked: a server closes each connection once its handler is done
// (unless the handler kept it), with a lingering close that loses no reply;
// after end(), the peer's end of stream releases a descriptor nobody reads;
// closeClients()/abortClients(); and 1,000 connections of each handler style
// leave descriptors, watchers and expected completions where they were.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { ConnectionClosedError, createLoop } from '../ts-host/dist/index.js';
import { virtualBackends } from './fixtures/backends.mjs';
import { IO_BACKENDS, NET_COMPLETION, backendLabel, unlessHostBug } from './helpers.mjs';
import { connectionsClosed, descriptorsBack, until, within } from './io-helpers.mjs';

const CONNECTIONS = 1000;
/** Connections open at once while counting. */
const BATCH = 50;

/** The virtual backend, made where this file can count its network's descriptors. */
const COUNTED_VIRTUAL = `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:countedVirtual`;

/** Open descriptors: the process's (Linux), or the virtual network's. */
function openDescriptors(backend) {
  if (backend === COUNTED_VIRTUAL) return virtualBackends[virtualBackends.length - 1].openDescriptors();
  return readdirSync('/proc/self/fd').length;
}

async function onLoop(backend, fn) {
  const loop = await createLoop({ backend: backend === 'virtual' ? COUNTED_VIRTUAL : backend });
  try {
    return await loop.runUntilComplete(() => fn(loop, backend === 'virtual' ? COUNTED_VIRTUAL : backend));
  } finally {
    await loop.close();
  }
}

/** Everything `conn` sends until its end (a reset counts as the end), as a string. */
async function readToEnd(conn) {
  let text = '';
  try {
    for await (const chunk of conn) text += Buffer.from(chunk).toString();
  } catch (error) {
    if (!/ECONNRESET|EPIPE|closed/.test(String(error))) throw error;
  }
  return text;
}

/** The handler styles counted; each `serve(loop)` returns a server, `client(loop, port)` runs one exchange. */
const STYLES = [
  {
    name: 'reads to the end, echoes, ends',
    serve: (loop) =>
      loop.createServer(
        async (conn) => {
          for await (const chunk of conn) await conn.write(chunk);
          await conn.end();
        },
        { port: 0 },
      ),
    async client(loop, port) {
      const c = await loop.createConnection({ port });
      await c.write('ping');
      await c.end();
      assert.is(await readToEnd(c), 'ping');
      c.close();
    },
  },
  {
    name: 'writes and ends without reading',
    serve: (loop) =>
      loop.createServer(
        async (conn) => {
          await conn.write('reply');
          await conn.end();
        },
        { port: 0 },
      ),
    async client(loop, port) {
      const c = await loop.createConnection({ port });
      await c.write('a request the server never reads');
      assert.is(await readToEnd(c), 'reply');
      c.close();
    },
  },
  {
    name: 'throws',
    serve: (loop) =>
      loop.createServer(
        async () => {
          throw new Error('handler failed on purpose');
        },
        { port: 0 },
      ),
    async client(loop, port) {
      const c = await loop.createConnection({ port });
      await c.write('x').catch(() => undefined);
      await readToEnd(c);
      c.close();
    },
  },
  {
    name: 'keeps the connection and closes it later',
    serve: (loop) =>
      loop.createServer(
        async (conn) => {
          conn.keepOpen();
          loop.callLater(1, () => conn.close());
        },
        { port: 0 },
      ),
    async client(loop, port) {
      const c = await loop.createConnection({ port });
      await readToEnd(c);
      c.close();
    },
  },
  ...[
    ['closes', (t) => t.close()],
    ['aborts', (t) => t.abort()],
    ['writes eof', (t) => t.writeEof()],
  ].map(([how, end]) => ({
    name: `a protocol that ${how}`,
    serve: (loop) =>
      loop.createProtocolServer(
        () => ({
          connectionMade(t) {
            t.write('reply');
            end(t);
          },
        }),
        { port: 0 },
      ),
    async client(loop, port) {
      const c = await loop.createConnection({ port });
      await readToEnd(c);
      c.close();
    },
  })),
];

for (const backend of IO_BACKENDS) {
  const label = backendLabel(backend);
  const test = suite(`servers on '${label}'`);

  test('a handler that settles has its connection closed; one that keeps it, not', () =>
    onLoop(backend, async (loop) => {
      let kept;
      const server = await loop.createServer(
        async (conn) => {
          const line = Buffer.from(await conn.readLine()).toString();
          if (line === 'keep\n') {
            conn.keepOpen();
            kept = conn;
          }
          await conn.write(`got ${line}`);
        },
        { port: 0 },
      );
      const port = server.address().port;
      const settled = await loop.createConnection({ port });
      await settled.write('done\n');
      assert.is(await readToEnd(settled), 'got done\n', 'the reply, then the end of the stream');
      settled.close();
      const keeper = await loop.createConnection({ port });
      await keeper.write('keep\n');
      assert.is(Buffer.from(await keeper.read()).toString(), 'got keep\n');
      await until(loop, () => kept !== undefined, 'the handler kept it');
      await kept.write('later');
      assert.is(Buffer.from(await keeper.read()).toString(), 'later', 'the kept connection still works');
      await until(
        loop,
        () => server.connections === 1,
        'one connection left',
        () => `(${server.connections})`,
      );
      kept.close();
      assert.is(await keeper.read(), null);
      keeper.close();
      await within(server.close(), 'server.close()');
    }));

  test('a lingering close loses no reply: unread request bytes do not reset it', () =>
    onLoop(backend, async (loop) => {
      const reply = new Uint8Array(1024 * 1024).fill(97);
      const server = await loop.createServer(
        async (conn) => {
          await conn.write(reply);
        },
        { port: 0 },
      );
      const c = await loop.createConnection({ port: server.address().port });
      // A request the handler never reads, still arriving as it returns.
      const request = c.write(new Uint8Array(256 * 1024));
      let got = 0;
      for await (const chunk of c) got += chunk.length;
      assert.is(got, reply.length, 'the whole reply arrived, then the end of the stream');
      await request;
      c.close();
      await within(server.close(), 'server.close()');
    }));

  unlessHostBug(
    test,
    backend === NET_COMPLETION ? 'node:net half-open' : null,
    'after end(), the peer closing releases the descriptor; what came stays readable',
    () =>
      onLoop(backend, async (loop, spec) => {
        const server = await loop.createServer(
          async (conn) => {
            await conn.write('bye');
          },
          { port: 0 },
        );
        const c = await loop.createConnection({ port: server.address().port });
        await c.end();
        await until(loop, () => c.closed, 'released without a read');
        await within(server.close(), 'server.close()');
        assert.is(await readToEnd(c), 'bye');
        const before = openDescriptors(spec);
        c.close();
        assert.is(openDescriptors(spec), before, 'close() after the release closes nothing more');
      }),
  );

  test('closeClients(): pending reads reject, writes are flushed, close() resolves', () =>
    onLoop(backend, async (loop) => {
      const outcomes = [];
      const server = await loop.createServer(
        async (conn) => {
          await conn.write('hello');
          try {
            await conn.read();
            outcomes.push('read');
          } catch (error) {
            outcomes.push(error);
          }
        },
        { port: 0 },
      );
      const clients = await Promise.all([1, 2, 3].map(() => loop.createConnection({ port: server.address().port })));
      await until(loop, () => server.connections === 3, 'three accepted');
      server.closeClients();
      for (const c of clients) assert.is(await readToEnd(c), 'hello');
      await until(loop, () => outcomes.length === 3, 'every handler settled');
      for (const o of outcomes) assert.instance(o, ConnectionClosedError);
      for (const c of clients) c.close();
      await within(server.close(), 'server.close()');
      assert.is(server.connections, 0);
    }));

  test('abortClients(): connections close at once, blocked writes reject', () =>
    onLoop(backend, async (loop) => {
      let write;
      const server = await loop.createServer(
        async (conn) => {
          const chunk = new Uint8Array(64 * 1024);
          for (;;) {
            write = conn.write(chunk);
            await write;
          }
        },
        { port: 0 },
      );
      const c = await loop.createConnection({ port: server.address().port });
      // The client does not read: the server's writes block.
      await until(loop, () => write !== undefined, 'writing');
      let blocked = false;
      for (let i = 0; i < 10_000 && !blocked; i++) {
        const w = write;
        let settled = false;
        w.then(
          () => (settled = true),
          () => (settled = true),
        );
        await loop.sleep(1);
        blocked = !settled;
      }
      assert.ok(blocked, 'a write blocked');
      server.abortClients();
      const error = await within(
        write.then(
          () => null,
          (e) => e,
        ),
        'the blocked write',
      );
      assert.instance(error, ConnectionClosedError);
      await within(server.close(), 'server.close()');
      c.close();
    }));

  for (const style of STYLES) {
    test(`${CONNECTIONS} connections of a handler that ${style.name} leak nothing`, () =>
      onLoop(backend, async (loop, spec) => {
        loop.setExceptionHandler(() => undefined); // 'throws' reports each failure
        await loop.sleep(1);
        const baseline = { fds: openDescriptors(spec), ...pick(loop.stats()) };
        const server = await style.serve(loop);
        const port = server.address().port;
        for (let done = 0; done < CONNECTIONS; done += BATCH) {
          await Promise.all(Array.from({ length: BATCH }, () => style.client(loop, port)));
        }
        await connectionsClosed(loop, server);
        await within(server.close(), 'server.close()');
        // At most the baseline: a descriptor of an earlier case (a closed
        // loop's epoll set) may close meanwhile; a leak per connection
        // would leave hundreds more.
        await descriptorsBack(loop, () => openDescriptors(spec), baseline.fds);
        assert.equal(pick(loop.stats()), {
          watchers: baseline.watchers,
          completionsPending: baseline.completionsPending,
        });
      }));
  }

  test.run();
}

function pick(stats) {
  return { watchers: stats.watchers, completionsPending: stats.completionsPending };
}
