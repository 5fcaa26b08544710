/**
 * The `wasmloop:core/completion` import (wit/completion.wit):
 * `take-completed`, the tokens of I/O operations the host finished. The core
 * calls it in phase 3 of an iteration, after `take-ready`, only while
 * expected completions exist.
 *
 * The I/O model supplies the tokens (io-model/completion.ts: the backend's
 * queue); a loop without completion I/O reports none. The import is lowered
 * by hand (canonical-abi.ts).
 */
import { type LinearMemory, lowerTokenList } from './canonical-abi.js';

/** `take-completed`: at most `max` tokens, oldest first. */
export type TakeCompleted = (max: number) => Uint32Array;

/** The core module's name for this interface. */
export const COMPLETION_MODULE = 'wasmloop:core/completion@0.1.0';

/** `take-completed` as the core module calls it: `(max, retArea)`. */
export function lowerTakeCompleted(take: TakeCompleted, memory: LinearMemory): (max: number, retArea: number) => void {
  return lowerTokenList(take, memory);
}
