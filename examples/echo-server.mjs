// An echo server for `wasmloop run`:
//   wasmloop run ./examples/echo-server.mjs:main --port 8000 [--workers 2]
//   wasmloop run ./examples/echo-server.mjs:main --uds /tmp/echo.sock
// Answers `pid\n` with its process id, and `crash\n` by crashing its process
// (to show --workers restarting it); echoes everything else.
export async function main(loop, options) {
  const server = await loop.createServer(async (conn) => {
    try {
      let chunk;
      while ((chunk = await conn.read()) !== null) {
        const text = new TextDecoder().decode(chunk);
        if (text === 'pid\n') await conn.write(`${process.pid}\n`);
        else if (text === 'crash\n') process.exit(3);
        else await conn.write(chunk);
      }
      await conn.end();
    } catch (error) {
      if (error?.code !== 'ECONNRESET' && error?.code !== 'EPIPE') throw error;
      conn.close();
    }
  }, options.listen);
  // A heartbeat, so the stats show how late the loop runs its timers.
  loop.timers.setInterval(() => {}, 50);
  const at = server.address();
  const where = at.family === 'unix' ? at.path : `${at.host}:${at.port}`;
  console.log(`listening on ${where} (pid ${process.pid}, backend ${loop.backend})`);
  return server;
}
