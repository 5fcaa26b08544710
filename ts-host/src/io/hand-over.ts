/**
 * What startTls does to the plain object it upgrades (asyncio's
 * `start_tls`; docs/tls.md "STARTTLS"). The program and its server keep
 * holding that object, but from the call on its bytes belong to the TLS
 * layer, so this file, at once and synchronously:
 *
 * - captures the object's own methods (bound) as the *raw* side the TLS
 *   layer reads and writes through (io/connection-duplex.ts for a stream
 *   connection, io/transport-duplex.ts for a transport);
 * - shadows them on the object with ones that refuse (reads and writes:
 *   they would corrupt the TLS stream) or pass on to whoever owns the
 *   connection now (closing: the handshake in progress, then the new TLS
 *   connection or transport, the *heir*). So a server's `closeClients()`,
 *   `abortClients()`, a handler settling and the loop closing, all of which
 *   call the old object, reach the TLS session.
 *
 * It has no node: imports: the TLS layer (io/tls-upgrade.ts) loads when
 * startTls runs, after the swap here, so a read started right after
 * `startTls()` is refused rather than raced.
 */
import { WasmloopError } from '../errors.js';
import type { Protocol, Transport } from './protocols.js';

/** What now owns an upgraded connection: closing the old object closes it. */
export interface Heir {
  close(): void;
  closeGracefully(): void;
  /** A transport's abort (a stream connection's close is already at once). */
  abort?(): void;
  /** The server's handler settled (streams): the heir closes unless kept open. */
  handlerSettled?(): void;
  keepOpen?(): void;
}

/** Who closing goes to; a close asked for before there is an heir waits for one. */
export class Succession {
  #heir: Heir | null = null;
  /** The connection is gone (a failed handshake closed it): nothing to pass on. */
  #over = false;
  #asked: 'close' | 'closeGracefully' | 'abort' | null = null;

  /** From now on closing goes to `heir`, or, with null, nowhere (the connection is gone). */
  passTo(heir: Heir | null): void {
    this.#heir = heir;
    this.#over = heir === null;
    const asked = this.#asked;
    this.#asked = null;
    if (heir === null || asked === null) return;
    if (asked === 'abort') this.abort();
    else heir[asked]();
  }

  /** A close was asked for before the handshake began: true if so (the upgrade then stops). */
  get closeAsked(): boolean {
    return this.#asked !== null;
  }

  close(): void {
    if (this.#heir !== null) this.#heir.close();
    else if (!this.#over) this.#asked = 'close';
  }

  closeGracefully(): void {
    if (this.#heir !== null) this.#heir.closeGracefully();
    else if (!this.#over) this.#asked ??= 'closeGracefully';
  }

  abort(): void {
    if (this.#heir !== null) (this.#heir.abort ?? this.#heir.close).call(this.#heir);
    else if (!this.#over) this.#asked = 'abort';
  }

  handlerSettled(): void {
    if (this.#heir?.handlerSettled !== undefined) this.#heir.handlerSettled();
    else this.closeGracefully();
  }

  keepOpen(): void {
    this.#heir?.keepOpen?.();
  }
}

/** The refusal of an operation on an object startTls took over. */
export function handedOverError(operation: string): WasmloopError {
  return new WasmloopError(
    `${operation}: this connection was upgraded by startTls(); use the TLS connection it resolves to`,
  );
}

/** A stream connection's methods the TLS layer uses (connection-duplex.ts). */
export interface RawStream {
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  end(): Promise<void>;
  close(): void;
}

/** The part of a stream connection this file takes over. */
interface StreamObject {
  read(): Promise<Uint8Array | null>;
  write(data: Uint8Array): Promise<void>;
  end(): Promise<void>;
  close(): void;
}

const REFUSED_STREAM_METHODS = ['read', 'readExactly', 'readUntil', 'readLine', 'write', 'end', 'startTls'] as const;

/** Takes over stream connection `conn`: its raw side, and who its closing goes to. */
export function handOverStream(conn: StreamObject): { raw: RawStream; succession: Succession } {
  const raw: RawStream = {
    read: conn.read.bind(conn),
    write: conn.write.bind(conn),
    end: conn.end.bind(conn),
    close: conn.close.bind(conn),
  };
  const succession = new Succession();
  const own: PropertyDescriptorMap = {
    close: { value: () => succession.close() },
    closeGracefully: { value: () => succession.closeGracefully() },
    handlerSettled: { value: () => succession.handlerSettled() },
    keepOpen: { value: () => succession.keepOpen() },
  };
  for (const name of REFUSED_STREAM_METHODS) own[name] = { value: () => Promise.reject(handedOverError(name)) };
  Object.defineProperties(conn, own);
  return { raw, succession };
}

/** The part of a transport this file takes over: a BaseTransport (protocols.ts). */
interface TransportObject extends Transport {
  /** Where its events go (a protected field of BaseTransport, swapped here). */
  protocol: Protocol;
  closeGracefully(): void;
}

const REFUSED_TRANSPORT_METHODS = [
  'write',
  'writeEof',
  'pauseReading',
  'resumeReading',
  'setWriteBufferLimits',
] as const;

/**
 * Takes over `transport`: its raw side (a Transport over its own methods),
 * who its closing goes to, and `attach(protocol)`, which hands its events
 * to `protocol`. Until then they wait (reading is paused, so only the
 * connection's loss or end can come), as asyncio's start_tls pauses
 * reading until its TLS protocol is in place.
 */
export function handOverTransport(transport: Transport): {
  raw: Transport;
  succession: Succession;
  attach(protocol: Protocol): void;
} {
  const t = transport as TransportObject;
  const bound = <K extends keyof Transport>(name: K): Transport[K] =>
    (t[name] as (...args: never[]) => unknown).bind(t) as Transport[K];
  const raw: Transport = {
    write: bound('write'),
    writeEof: bound('writeEof'),
    close: bound('close'),
    abort: bound('abort'),
    isClosing: bound('isClosing'),
    pauseReading: bound('pauseReading'),
    resumeReading: bound('resumeReading'),
    isReading: bound('isReading'),
    writeBufferSize: bound('writeBufferSize'),
    setWriteBufferLimits: bound('setWriteBufferLimits'),
    setTcpOptions: bound('setTcpOptions'),
    get localAddress() {
      return t.localAddress;
    },
    get remoteAddress() {
      return t.remoteAddress;
    },
  };
  raw.pauseReading();
  const waiting: Array<(p: Protocol) => void> = [];
  let target: Protocol | null = null;
  const relay = (fn: (p: Protocol) => void) => (target === null ? waiting.push(fn) : fn(target));
  t.protocol = {
    dataReceived: (data) => relay((p) => p.dataReceived?.(data)),
    eofReceived: () => {
      relay((p) => p.eofReceived?.());
      // Open for writing: the TLS layer closes it.
      return true;
    },
    connectionLost: (error) => relay((p) => p.connectionLost?.(error)),
    pauseWriting: () => relay((p) => p.pauseWriting?.()),
    resumeWriting: () => relay((p) => p.resumeWriting?.()),
  };
  const succession = new Succession();
  const own: PropertyDescriptorMap = {
    close: { value: () => succession.close() },
    abort: { value: () => succession.abort() },
    closeGracefully: { value: () => succession.closeGracefully() },
  };
  for (const name of REFUSED_TRANSPORT_METHODS) {
    own[name] = {
      value: () => {
        throw handedOverError(name);
      },
    };
  }
  Object.defineProperties(t, own);
  const attach = (protocol: Protocol): void => {
    target = protocol;
    t.protocol = protocol;
    for (const fn of waiting.splice(0)) fn(protocol);
    if (!raw.isClosing()) raw.resumeReading();
  };
  return { raw, succession, attach };
}
