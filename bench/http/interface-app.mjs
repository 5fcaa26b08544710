// The same hello world as a fetch handler and as a node:http listener, for
// bench/http/interfaces.mjs: `wasmloop serve` serves either; node:http the
// listener.
export default { fetch: () => new Response('Hello, World!') };

export function listener(_req, res) {
  res.end('Hello, World!');
}

// `node interface-app.mjs PORT`: the listener on plain node:http.
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const http = await import('node:http');
  const port = Number(process.argv[2] ?? 8080);
  http
    .createServer(listener)
    .listen(port, '127.0.0.1', () => console.error(`node:http serving on http://127.0.0.1:${port}`));
}
