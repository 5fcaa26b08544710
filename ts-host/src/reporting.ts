/**
 * Where the loop's reports go: errors to the exception handler (asyncio's
 * `call_exception_handler`), everything else to the logger.
 *
 *     a callback throws ----------> exception handler (default: logger.error)
 *     the handler itself throws --> logger.error
 *     a slow callback (debug) ----> logger.warn
 *
 * The logger is the program's (`createLoop({ logger })`, console-shaped:
 * `warn` and `error`), `console` by default. Nothing here ever throws: a
 * report that fails (a logger or handler that throws, a callback whose
 * `name` getter throws) is dropped or reported more plainly, never allowed
 * to break the iteration that made it.
 */
import { describe } from './errors.js';
import type { Handle } from './handles.js';

/** A callback as the loop stores it. */
export type Callback = (...args: any[]) => unknown;

/** What the loop logs through: `console`, or anything with its `warn` and `error`. */
export interface Logger {
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
}

/** What the exception handler receives (asyncio's context dict). */
export interface ExceptionContext {
  /** What went wrong, for humans. */
  message: string;
  /** What was thrown. */
  error: unknown;
  /** The handle of the callback that threw, when there is one. */
  handle?: Handle;
  /** The callback that threw. */
  callback?: Callback;
  /** Where the callback was scheduled (debug mode). */
  scheduledAt?: string;
}

/**
 * The exception handler as the reporter calls it: with the loop (typed
 * `EventLoop` in loop.ts's `ExceptionHandler`; this file does not import
 * the loop) and the context.
 */
export type ReportHandler = (loop: any, context: ExceptionContext) => void;

/** The logger option, checked: an object with `warn` and `error` functions. */
export function checkLogger(operation: string, logger: unknown): Logger {
  const l = logger as Partial<Logger> | null;
  if (typeof l !== 'object' || l === null || typeof l.warn !== 'function' || typeof l.error !== 'function') {
    throw new TypeError(
      `${operation}: logger must be an object with warn and error functions (as console), got ${describe(logger)}`,
    );
  }
  return l as Logger;
}

/**
 * A callback's name for a report: `<anonymous>` for none, and never a throw
 * (a getter that throws, a revoked Proxy).
 */
export function callbackName(fn: unknown): string {
  try {
    const name = (fn as { name?: unknown }).name;
    return typeof name === 'string' && name !== '' ? name : '<anonymous>';
  } catch {
    return '<unnamed>';
  }
}

export class Reporter {
  readonly #loop: object;
  readonly #logger: Logger;
  #handler: ReportHandler | null = null;

  constructor(loop: object, logger: Logger) {
    this.#loop = loop;
    this.#logger = logger;
  }

  get handler(): ReportHandler | null {
    return this.#handler;
  }

  set handler(handler: ReportHandler | null) {
    this.#handler = handler;
  }

  /** Reports `context` to the exception handler; never throws. */
  exception(context: ExceptionContext): void {
    const handler = this.#handler;
    if (handler === null) {
      const where = context.scheduledAt === undefined ? '' : `\nscheduled at:\n${context.scheduledAt}`;
      this.error(`wasmloop: ${context.message}${where}`, context.error);
      return;
    }
    try {
      handler(this.#loop, context);
    } catch (error) {
      this.error('wasmloop: the exception handler threw', error, 'while handling:', context);
    }
  }

  /** Logs a warning; never throws (a logger that throws loses the line). */
  warn(...data: unknown[]): void {
    try {
      this.#logger.warn(...data);
    } catch {
      // The logger is the last place a report can go.
    }
  }

  /** Logs an error; never throws. */
  error(...data: unknown[]): void {
    try {
      this.#logger.error(...data);
    } catch {
      // As in warn().
    }
  }
}
