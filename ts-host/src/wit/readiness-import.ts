/**
 * The `wasmloop:core/readiness` import (wit/readiness.wit): `take-ready`,
 * the tokens of watched sources that became ready. The core calls it in
 * phase 3 of an iteration, only while watchers exist.
 *
 * The I/O model supplies the tokens (io-model/readiness.ts: the backend's
 * queue, or the recording's when replaying); a loop without readiness I/O
 * reports none. The import is lowered by hand (canonical-abi.ts).
 */
import { type LinearMemory, lowerTokenList } from './canonical-abi.js';

/** `take-ready`: at most `max` tokens, oldest first. */
export type TakeReady = (max: number) => Uint32Array;

/** The core module's name for this interface. */
export const READINESS_MODULE = 'wasmloop:core/readiness@0.1.0';

/** `take-ready` as the core module calls it: `(max, retArea)`. */
export function lowerTakeReady(take: TakeReady, memory: LinearMemory): (max: number, retArea: number) => void {
  return lowerTokenList(take, memory);
}
