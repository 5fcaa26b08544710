// Bun's own echo server (Bun.listen), a peer of bench/tcp/hosts.mjs:
//   bun bun-echo.mjs PORT [batched]
// A write the kernel does not take whole keeps the rest until `drain`.
// `batched`: the writes of one host turn go out together from one
// setImmediate, as the loop's iteration sends them; bench/tcp/
// hosts-breakdown.mjs prices that.
const batched = process.argv[3] === 'batched';
let queued = [];
const flush = () => {
  const sockets = queued;
  queued = [];
  for (let i = 0; i < sockets.length; i += 2) send(sockets[i], sockets[i + 1]);
};
function send(socket, chunk) {
  if (socket.data.length > 0) {
    socket.data.push(chunk);
    return;
  }
  const n = socket.write(chunk);
  if (n < chunk.length && n >= 0) socket.data.push(chunk.subarray(n));
}
const listener = Bun.listen({
  hostname: '127.0.0.1',
  port: Number(process.argv[2]),
  socket: {
    open(socket) {
      socket.data = [];
    },
    data(socket, chunk) {
      if (!batched) {
        send(socket, chunk);
        return;
      }
      if (queued.length === 0) setImmediate(flush);
      queued.push(socket, chunk);
    },
    drain(socket) {
      while (socket.data.length > 0) {
        const chunk = socket.data[0];
        const n = socket.write(chunk);
        if (n < chunk.length) {
          if (n > 0) socket.data[0] = chunk.subarray(n);
          return;
        }
        socket.data.shift();
      }
    },
  },
});
console.log(`ready ${listener.port}`);
