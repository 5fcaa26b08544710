/**
 * UDP endpoints on `node:dgram`, for the completion backends whose host has
 * no stable UDP of its own: the portable `node:net` implementation, and the
 * Deno and Bun ones (Deno's `Deno.listenDatagram` needs `--unstable-net`;
 * Bun's `node:dgram` is its `Bun.udpSocket`). Absent where `node:dgram` is
 * (workerd): those backends then have no `datagram()`.
 */
import type { CompletionBackend, CompletionDatagram, SocketAddress } from '../backends/backend.js';

type DgramModule = typeof import('node:dgram');

let dgram: DgramModule | null = null;
try {
  dgram = (await import('node:dgram')) as DgramModule;
  if (typeof dgram.createSocket !== 'function') dgram = null;
} catch {
  // No node:dgram here (workerd): no datagram endpoints.
}

/** A host's address report as a SocketAddress (`family` 'IPv6' or 6 for IPv6). */
export function netAddress(
  host: string | undefined,
  port: number | undefined,
  family: string | number | undefined,
): SocketAddress {
  return {
    host: host ?? '',
    port: port ?? 0,
    family: family === 'IPv6' || family === '6' || family === 6 ? 'IPv6' : 'IPv4',
  };
}

/**
 * Deno's `node:dgram` (2.9) sends the datagrams handed to it in one turn in
 * reverse order; there, each send waits for the one before it.
 */
const SENDS_ONE_AT_A_TIME = (globalThis as { Deno?: unknown }).Deno !== undefined;

interface QueuedSend {
  data: Uint8Array;
  host: string | null;
  port: number;
  sent: (error: Error | null) => void;
}

/** `datagram()` of the contract on `node:dgram`, or null where that module is missing. */
export function nodeDatagram(): NonNullable<CompletionBackend['datagram']> | null {
  const module = dgram;
  if (module === null) return null;
  return ({ local, remote }, onDatagram, onError, done) => {
    const socket = module.createSocket({ type: local.host.includes(':') ? 'udp6' : 'udp4' });
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      socket.close();
    };
    const fail = (error: Error) => {
      close();
      done(error);
    };
    socket.once('error', fail);
    const queue: QueuedSend[] = [];
    const transmit = ({ data, host, port, sent }: QueuedSend) => {
      const callback = (error: Error | null) => {
        sent(error ?? null);
        if (!SENDS_ONE_AT_A_TIME) return;
        queue.shift();
        const next = queue[0];
        if (next !== undefined && !closed) transmit(next);
      };
      if (host === null) socket.send(data, callback);
      else socket.send(data, port, host, callback);
    };
    const endpoint: CompletionDatagram = {
      send(data, host, port, sent) {
        if (closed) {
          sent(Object.assign(new Error('sendto failed: EBADF'), { code: 'EBADF', syscall: 'sendto' }));
          return;
        }
        const send = { data, host, port, sent };
        if (!SENDS_ONE_AT_A_TIME) transmit(send);
        else if (queue.push(send) === 1) transmit(send);
      },
      close,
      get localAddress() {
        const a = socket.address();
        return netAddress(a.address, a.port, a.family);
      },
      get remoteAddress() {
        if (remote === null) return null;
        const a = socket.remoteAddress();
        return netAddress(a.address, a.port, a.family);
      },
    };
    socket.bind(local.port, local.host, () => {
      const opened = () => {
        socket.off('error', fail);
        socket.on('error', (error) => onError(error));
        socket.on('message', (message, info) =>
          onDatagram(
            new Uint8Array(message.buffer, message.byteOffset, message.byteLength),
            netAddress(info.address, info.port, info.family),
          ),
        );
        done(null, endpoint);
      };
      if (remote === null) opened();
      else socket.connect(remote.port, remote.host, opened);
    });
  };
}
