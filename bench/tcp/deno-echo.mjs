// Deno's own echo server (Deno.listen), a peer of bench/tcp/hosts.mjs:
//   deno run -A deno-echo.mjs PORT [copy]
// `copy`: each read is copied out to an ArrayBuffer of its own before it
// is written back, as the loop hands chunks to programs (docs/design.md,
// "Who owns a chunk's bytes"); bench/tcp/hosts-breakdown.mjs prices that.
const copy = Deno.args[1] === 'copy';
const listener = Deno.listen({ hostname: '127.0.0.1', port: Number(Deno.args[0]) });
console.log(`ready ${listener.addr.port}`);
for await (const conn of listener) {
  (async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        const chunk = copy ? buffer.slice(0, n) : buffer;
        let offset = 0;
        while (offset < n) offset += await conn.write(chunk.subarray(offset, n));
      }
    } catch {
      // A reset: the connection is gone.
    }
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  })();
}
