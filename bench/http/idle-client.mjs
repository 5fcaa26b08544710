// The HTTP benchmark's idle connections: opens N keep-alive connections to
// a server, sends one `GET /` on each and checks its status and body, and
// keeps them all open. Prints one JSON line once every connection has its
// answer; when its standard input ends, prints how many the server closed
// meanwhile, closes them all and exits.
//
//   node bench/http/idle-client.mjs PORT N   (needs ulimit -n above N)
import net from 'node:net';

const [port, count] = process.argv.slice(2).map(Number);
/** Connections being opened at once: well under the servers' listen backlogs. */
const CONCURRENT = 200;
const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
const EXPECTED = 'Hello, World!';

const sockets = [];
let answered = 0;
let failed = 0;
let closedAfterAnswer = 0;
let firstProblem = null;

/** The body of a whole response in `text`, or null while incomplete; throws if it is not a 200. */
function bodyOf(text) {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1) return null;
  const head = text.slice(0, headEnd).toLowerCase();
  if (!/^http\/1\.1 200 /.test(head)) throw new Error(`status line ${JSON.stringify(head.split('\r\n')[0])}`);
  const rest = text.slice(headEnd + 4);
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length !== null) return rest.length >= Number(length[1]) ? rest.slice(0, Number(length[1])) : null;
  if (!rest.endsWith('0\r\n\r\n')) return null;
  let body = '';
  for (let at = 0; ; ) {
    const lineEnd = rest.indexOf('\r\n', at);
    const size = Number.parseInt(rest.slice(at, lineEnd), 16);
    if (size === 0) return body;
    body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

function open() {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      failed++;
      firstProblem ??= why;
      socket.destroy();
      resolve();
    };
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(REQUEST));
    socket.on('data', (data) => {
      if (done) return;
      text += data.toString('latin1');
      try {
        const body = bodyOf(text);
        if (body === null) return;
        if (body !== EXPECTED) throw new Error(`body ${JSON.stringify(body.slice(0, 40))}`);
      } catch (error) {
        fail(error.message);
        return;
      }
      done = true;
      answered++;
      resolve();
    });
    socket.on('error', (error) => fail(error.code ?? error.message));
    socket.on('close', () => {
      if (done) closedAfterAnswer++;
      else fail('closed before answering');
    });
    sockets.push(socket);
  });
}

let next = 0;
async function worker() {
  while (next < count) {
    next++;
    await open();
  }
}
await Promise.all(Array.from({ length: Math.min(CONCURRENT, count) }, worker));
console.log(JSON.stringify({ answered, failed, closedAfterAnswer, firstProblem }));

process.stdin.resume();
process.stdin.on('end', () => {
  console.log(JSON.stringify({ closedAfterAnswer }));
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
