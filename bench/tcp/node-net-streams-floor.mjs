// The floor under any read()/write() streams API on Node's `net`: Node's
// sockets with a promise per read and per write, and no loop. A read
// resolves with the next chunk (at once if one is queued); a write resolves
// once Node took all of it (at once when the kernel did, as wasmloop's
// writes do). Each chunk arrives in a 'data' callback of its own, so the
// promise continuations run between two chunks, as Node's macrotask order
// and the loop's have them. What this server spends over `node-echo.mjs`
// is the API's (the promises, the async function's awaits); what
// `wasmloop-echo.mjs` on `completion` over `node:net` spends over this one
// is the loop's.
//   node node-net-streams-floor.mjs PORT
import net from 'node:net';

const DONE = Promise.resolve();

function streams(socket) {
  const queued = [];
  let waiting = null;
  let ended = false;
  const settle = (chunk) => {
    const resolve = waiting;
    waiting = null;
    resolve(chunk);
  };
  socket.on('data', (chunk) => {
    if (waiting !== null) settle(chunk);
    else queued.push(chunk);
  });
  // The end of stream, or a reset (a load client that exits mid-message).
  const finish = () => {
    ended = true;
    if (waiting !== null) settle(null);
  };
  socket.on('end', finish);
  socket.on('close', finish);
  return {
    read() {
      if (queued.length > 0) return Promise.resolve(queued.shift());
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    write(chunk) {
      let written = false;
      let later = null;
      socket.write(chunk, () => {
        written = true;
        if (later !== null) later();
      });
      if (written || socket.writableLength === 0) return DONE;
      return new Promise((resolve) => {
        later = resolve;
      });
    },
  };
}

const server = net.createServer({ noDelay: true }, async (socket) => {
  socket.on('error', () => socket.destroy());
  const conn = streams(socket);
  let chunk;
  while ((chunk = await conn.read()) !== null) await conn.write(chunk);
  socket.end();
});
server.listen(Number(process.argv[2]), '127.0.0.1', 1024, () => console.log(`ready ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
