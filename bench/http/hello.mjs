// A hello-world HTTP server for load tests: wasmloop's serve() or node:http.
//
//   node bench/http/hello.mjs wasmloop [backend] [port]
//   node bench/http/hello.mjs node [port]
//
// HELLO_SECONDS=n exits after n seconds (so that --cpu-prof writes its profile);
// HELLO_LIGHT=0 keeps Node's own Response (serve({ lightResponse: false })).
const seconds = Number(process.env.HELLO_SECONDS ?? 0);
if (seconds > 0) setTimeout(() => process.exit(0), seconds * 1000).unref?.();
const [kind = 'wasmloop', a, b] = process.argv.slice(2);
if (kind === 'node') {
  const http = await import('node:http');
  const port = Number(a ?? 8080);
  http
    .createServer((_req, res) => res.end('Hello, World!'))
    .listen(port, '127.0.0.1', () => console.log(`node:http on ${port}`));
} else {
  const { createLoop, serve } = await import('../../ts-host/dist/index.js');
  const loop = await createLoop({ backend: a ?? 'selector' });
  const port = Number(b ?? 8080);
  await loop.runUntilComplete(async () => {
    await serve(loop, {
      fetch: () => new Response('Hello, World!'),
      port,
      lightResponse: process.env.HELLO_LIGHT !== '0',
    });
    console.log(`wasmloop serve (${loop.backend}) on ${port}`);
  });
  await loop.runForever();
}
