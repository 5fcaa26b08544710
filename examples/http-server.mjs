// An HTTP/1.1 server with a fetch handler (docs/http.md):
//   node examples/http-server.mjs [port]
// then: curl -i localhost:8080/hello; curl -d 'some text' localhost:8080/echo
// Ctrl-C closes it gracefully: requests in flight finish, then it exits.
import { createLoop, serve } from 'wasmloop';

const port = Number(process.argv[2] ?? 8080);
const loop = await createLoop();
const stop = new AbortController();
loop.addSignalHandler('SIGINT', () => stop.abort());

async function fetch(request) {
  const url = new URL(request.url);
  if (url.pathname === '/echo' && request.method === 'POST') {
    // The body streams; Response takes the stream as it is.
    return new Response(request.body, {
      headers: { 'content-type': request.headers.get('content-type') ?? 'text/plain' },
    });
  }
  if (url.pathname === '/slow') {
    await loop.sleep(1000);
    return new Response('slept a second\n');
  }
  return Response.json({ method: request.method, path: url.pathname, agent: request.headers.get('user-agent') });
}

await loop.runUntilComplete(async () => {
  const server = await serve(loop, { fetch, port, signal: stop.signal });
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
  await new Promise((resolve) => stop.signal.addEventListener('abort', resolve));
  await server.close({ timeoutMs: 5000 });
  console.log('closed');
});
await loop.close();
