/**
 * Numeric limits the host shares. 2^31 - 1 is where three unrelated limits
 * meet: the longest delay a host timer takes (ms; Node's TIMEOUT_MAX), and
 * the largest file descriptor. Each user names its own constant after it.
 */

/** The largest signed 32-bit integer, 2^31 - 1. */
export const INT32_MAX = 2 ** 31 - 1;

/**
 * The pending-connection queue a listener asks for when its caller names
 * none: Node's default (listen(2) caps it at the system's somaxconn).
 */
export const DEFAULT_BACKLOG = 511;
