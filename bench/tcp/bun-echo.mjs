// Bun's own echo server (Bun.listen), a peer of bench/tcp/hosts.mjs:
//   bun bun-echo.mjs PORT
// A write the kernel does not take whole keeps the rest until `drain`.
const listener = Bun.listen({
  hostname: '127.0.0.1',
  port: Number(process.argv[2]),
  socket: {
    open(socket) {
      socket.data = [];
    },
    data(socket, chunk) {
      if (socket.data.length > 0) {
        socket.data.push(chunk);
        return;
      }
      const n = socket.write(chunk);
      if (n < chunk.length && n >= 0) socket.data.push(chunk.subarray(n));
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
