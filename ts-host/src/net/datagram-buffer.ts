/**
 * The datagram sizes and the one receive buffer every UDP endpoint shares,
 * on either I/O model (io/datagram-readiness.ts, backends/completion-native.ts).
 * Sharing it is safe because a received datagram is copied out to an array
 * of its own size before the next receive.
 */

/** The largest UDP payload (IPv4: 65,535 bytes minus the headers). */
export const MAX_DATAGRAM_BYTES = 65_507;

/** Datagrams an endpoint takes per readiness, so one busy endpoint cannot monopolise an iteration. */
export const DATAGRAMS_PER_READINESS = 64;

/**
 * Where datagrams are received, on either model; each is copied out to an
 * array of its own size at once, so one buffer serves every endpoint.
 */
export const datagramScratch = new Uint8Array(MAX_DATAGRAM_BYTES);
