// loop.serve(options): serve(loop, options) as a method of the loop.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { IO_BACKENDS, backendLabel, onLoop } from './helpers.mjs';

const method = suite('loop.serve');

for (const backend of IO_BACKENDS) {
  method(`${backendLabel(backend)}: loop.serve({ fetch }) answers on the loop and closes`, () =>
    onLoop(backend, async (loop) => {
      const server = await loop.serve({
        port: 0,
        fetch: (request) => new Response(`${request.method} ${new URL(request.url).pathname}`),
      });
      const { port } = server.address();
      // The client is a connection of the same loop, so the virtual network serves too.
      const conn = await loop.createConnection({ host: '127.0.0.1', port });
      await conn.write('GET /on-the-loop HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      const chunks = [];
      for await (const chunk of conn) chunks.push(chunk);
      conn.close();
      const reply = Buffer.concat(chunks).toString('latin1');
      assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(reply.endsWith('\r\n\r\nGET /on-the-loop'), reply);
      await server.close();
      assert.is(server.connections, 0);
    }),
  );
}

method('loop.serve checks its options as serve() does: an unknown one is a TypeError naming it', () =>
  onLoop('virtual', async (loop) => {
    const failure = (options) =>
      loop.serve(options).then(
        () => null,
        (error) => error,
      );
    const unknown = await failure({ fetch: () => new Response(''), keepAliveTimeout: 5 });
    assert.instance(unknown, TypeError);
    assert.is(unknown.message, "serve: unknown option 'keepAliveTimeout' (did you mean 'keepAliveTimeoutMs'?)");
    assert.is((await failure({ port: 0 })).message, 'serve: fetch must be a function, got undefined');
  }),
);

method.run();
