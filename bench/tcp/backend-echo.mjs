// The Deno or Bun completion backend alone, without a loop: each chunk is
// written back from the backend's own callback. A peer of
// bench/tcp/hosts-breakdown.mjs, which sets it between the host's own echo
// and wasmloop's:
//   deno run -A backend-echo.mjs PORT      bun backend-echo.mjs PORT
const deno = typeof Deno !== 'undefined';
const port = Number(deno ? Deno.args[0] : process.argv[2]);
const module = await import(`../../ts-host/dist/backends/completion-${deno ? 'deno' : 'bun'}.js`);
const backend = deno ? module.createDenoCompletionBackend() : module.createBunCompletionBackend();
backend.attach({ wake() {}, schedule() {} });
backend.listen(
  { host: '127.0.0.1', port, backlog: 511 },
  (socket) => {
    socket.start(
      (chunk) => (chunk === null ? socket.destroy() : socket.write(chunk, () => undefined)),
      () => socket.destroy(),
    );
    socket.setFlowing(true);
  },
  (error, listener) => {
    if (error !== null) throw error;
    console.log(`ready ${listener.address().port}`);
  },
);
