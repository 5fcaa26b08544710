// TCP through the WASI echo server and client (rust-core/wasi/echo-server,
// echo-client) under `wasmtime run -S inherit-network`, driven from Node:
// start the server, echo bytes through it on several connections at once,
// stop it by closing its stdin; run the client against a Node echo server.
// Used by wasi.check.mjs and by run.mjs (the host report's TCP entry).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { execute } from '../process.mjs';

/**
 * Starts the echo server on `host` (an IP address), on a port the system
 * picks. Resolves once it
 * printed its `listening` line, to { host, port, core, child, stop }, where
 * `core` is the core sha256 it reports and `stop()` closes its stdin and
 * resolves to { code, signal, stopped (its last line, parsed), stderr }.
 * Rejects with its stderr if it exits first or says nothing within
 * `timeoutMs` (a limit, not an expectation: compiling the component takes
 * most of it).
 */
export function startEchoServer({ wasmtime, component, host = '127.0.0.1', timeoutMs = 60_000 }) {
  const child = spawn(
    wasmtime,
    ['run', '-S', 'inherit-network', component, '--host', host, '--port', '0', '--stop-on-stdin-eof'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const lines = () =>
    stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line));
  // Closing stdin stops it; one that has not exited within `timeoutMs` is
  // killed (and reported with its signal).
  const stop = async () => {
    child.stdin.end();
    const limit = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await exited;
    clearTimeout(limit);
    return { code, signal, stopped: lines().find((line) => line.stopped), stderr };
  };
  return new Promise((resolve, reject) => {
    const limit = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the echo server did not listen within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
      const listening = stdout.includes('\n') ? lines().find((line) => line.listening) : undefined;
      if (listening === undefined) return;
      clearTimeout(limit);
      // 127.0.0.1:8000 or [::1]:8000
      const at = listening.listening.lastIndexOf(':');
      const host = listening.listening.slice(0, at).replace(/^\[(.*)\]$/, '$1');
      resolve({ host, port: Number(listening.listening.slice(at + 1)), core: listening.core, child, stop });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(limit);
      reject(new Error(`the echo server exited (${signal ?? code}) before listening:\n${stderr}`));
    });
  });
}

/**
 * Sends `bytes` random bytes on one connection, ends its side, and resolves
 * to { sent, received } once the server has ended its side too; rejects if
 * that has not happened within `timeoutMs`.
 */
export function echoOnce({ host, port, bytes, timeoutMs = 60_000 }) {
  const sent = randomBytes(bytes);
  return new Promise((resolve, reject) => {
    const chunks = [];
    const socket = connect({ host, port }, () => socket.end(sent));
    const limit = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`no end of the echo within ${timeoutMs} ms (${Buffer.concat(chunks).length} of ${bytes} bytes back)`),
      );
    }, timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', () => {
      clearTimeout(limit);
      resolve({ sent, received: Buffer.concat(chunks) });
    });
    socket.on('error', (error) => {
      clearTimeout(limit);
      reject(error);
    });
  });
}

/** A Node echo server on 127.0.0.1; resolves to { host, port, close }. */
export async function startNodeEchoServer() {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: server.address().port,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Runs the echo client against host:port; resolves to { code, signal,
 * report (its JSON line, parsed, or null), stderr }.
 */
export async function runEchoClient({
  wasmtime,
  component,
  host,
  port,
  connections = 4,
  bytes = 1 << 20,
  timeoutMs = 120_000,
}) {
  const args = [
    'run',
    '-S',
    'inherit-network',
    component,
    '--host',
    host,
    '--port',
    String(port),
    '--connections',
    String(connections),
    '--bytes',
    String(bytes),
  ];
  const { code, signal, stdout, stderr } = await execute(wasmtime, args, { timeoutMs });
  const line = stdout.trim().split('\n').pop();
  let report = null;
  try {
    report = JSON.parse(line);
  } catch {
    // No report: the exit code and stderr say why.
  }
  return { code, signal, report, stderr };
}

/**
 * The host report's TCP entry. Server: `connections` Node clients at once,
 * `bytes` each, through a fresh echo server, then a clean stop. Client: the
 * echo client's `connections` at once to a Node echo server. Resolves to
 * { pass, detail } (never rejects).
 */
export async function echoCheck({ wasmtime, component, client, connections = 4, bytes = 1 << 20 }) {
  const server = await serverCheck({ wasmtime, component, connections, bytes });
  if (client === undefined) return server;
  const nodeServer = await startNodeEchoServer();
  try {
    const run = await runEchoClient({ wasmtime, component: client, ...nodeServer, connections, bytes });
    const clientPass = run.code === 0 && run.report?.intact === connections;
    return {
      pass: server.pass && clientPass,
      detail: `server: ${server.detail}; client: ${clientPass ? `${connections} connections x ${bytes} bytes to a Node echo server came back intact` : `failed (${run.signal ?? run.code}): ${JSON.stringify(run.report)} ${run.stderr}`}`,
    };
  } finally {
    await nodeServer.close();
  }
}

async function serverCheck({ wasmtime, component, connections, bytes }) {
  let server;
  try {
    server = await startEchoServer({ wasmtime, component });
    const echoes = await Promise.all(Array.from({ length: connections }, () => echoOnce({ ...server, bytes })));
    const intact = echoes.filter(({ sent, received }) => sent.equals(received)).length;
    const { code, signal, stopped, stderr } = await server.stop();
    server = undefined;
    if (intact !== connections)
      return { pass: false, detail: `${connections - intact} of ${connections} connections echoed different bytes` };
    if (code !== 0) return { pass: false, detail: `the server exited with ${signal ?? code}: ${stderr}` };
    return {
      pass: stopped?.connections === connections && stopped?.bytes === connections * bytes,
      detail: `${connections} connections x ${bytes} bytes echoed intact; the server counted ${JSON.stringify(stopped)}`,
    };
  } catch (error) {
    return { pass: false, detail: String(error.message ?? error) };
  } finally {
    if (server !== undefined) server.child.kill('SIGKILL');
  }
}
