/**
 * Command-line flags: each command declares its flags in a table (name,
 * aliases, value parser, help), and `parseFlags` reads argv against it.
 * Values are parsed strictly, so `--port 0x50`, `--port 1e3`, `--port ' 80'`
 * and `--port=` are errors naming the flag rather than ports 80, 1000, 80
 * and 0; a misspelt flag is answered with the one it probably meant.
 */
import { suggestion } from '../options.js';

/** Bad command-line input: the command prints the message on one line and exits 2. */
export class UsageError extends Error {}

/** One flag of a command. */
export interface Flag<T = unknown> {
  /** The flag without its dashes: `port` for `--port`. */
  name: string;
  /** Other names accepted for it (uvicorn's spellings: `loop` for `backend`). */
  aliases?: readonly string[];
  /** For a switch: the name that turns it off (`no-access-log` for `access-log`); the last one given wins. */
  off?: string;
  /** How its value is written in the help (`<port>`); absent for a switch, which takes no value. */
  placeholder?: string;
  /** Turns the text after the flag into its value; UsageError naming the flag if it does not fit. */
  parse?: (text: string, flag: string) => T;
  /** One line (or a few) for --help. */
  help: string;
}

/** What `parseFlags` read: each flag given (by name, the last one given wins) and the operands. */
export interface ParsedFlags {
  values: Map<string, unknown>;
  operands: string[];
}

/**
 * Other tools' names for our flags, to suggest ours when one is typed
 * (uvicorn's --timeout-graceful-shutdown counts seconds; ours, ms).
 */
const FOREIGN_NAMES: Readonly<Record<string, string>> = {
  'timeout-graceful-shutdown': 'shutdown-timeout-ms',
  'graceful-timeout': 'shutdown-timeout-ms',
  'unix-socket': 'uds',
  socket: 'uds',
  bind: 'host',
  processes: 'workers',
};

/** Reads `args` against `flags`; UsageError for an unknown flag, a missing value or a bad one. */
export function parseFlags(args: readonly string[], flags: readonly Flag[]): ParsedFlags {
  const byName = new Map<string, Flag>();
  const offNames = new Set<string>();
  for (const flag of flags) {
    for (const name of [flag.name, ...(flag.aliases ?? [])]) byName.set(name, flag);
    if (flag.off !== undefined) {
      byName.set(flag.off, flag);
      offNames.add(flag.off);
    }
  }
  const values = new Map<string, unknown>();
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      operands.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const written = equals < 0 ? arg : arg.slice(0, equals);
    const inline = equals < 0 ? undefined : arg.slice(equals + 1);
    const flag = arg.startsWith('--') ? byName.get(written.slice(2)) : undefined;
    if (flag === undefined) throw new UsageError(unknownFlag(written, byName));
    if (flag.parse === undefined) {
      if (inline !== undefined) throw new UsageError(`${written} takes no value, got '${arg}'`);
      values.set(flag.name, !offNames.has(written.slice(2)));
      continue;
    }
    let text = inline;
    if (text === undefined) {
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${written} needs a value`);
      text = next;
      i++;
    }
    if (text === '') throw new UsageError(`${written} needs a value`);
    values.set(flag.name, flag.parse(text, written));
  }
  return { values, operands };
}

function unknownFlag(written: string, byName: ReadonlyMap<string, Flag>): string {
  const bare = written.replace(/^-+/, '');
  // Compared without their dashes, as suggestion() compares the key.
  const names = new Map([...byName.keys()].map((name) => [name.replace(/-/g, ''), name]));
  const meant = Object.hasOwn(FOREIGN_NAMES, bare)
    ? FOREIGN_NAMES[bare]
    : names.get(suggestion(bare, [...names.keys()]) ?? '');
  if (meant === null || meant === undefined) return `unknown option '${written}' (see --help)`;
  return `unknown option '${written}' (did you mean '--${meant}'?)`;
}

/** A parser for integers from `min` to `max`, written in decimal digits only. */
export function integer(min: number, max: number): (text: string, flag: string) => number {
  return (text, flag) => {
    const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got '${text}'`);
    }
    return n;
  };
}

/** The help lines of a table of flags, and `-h, --help`, aligned. */
export function flagHelp(flags: readonly Flag[]): string {
  const rows: Array<[string, string]> = flags.map((f) => {
    const names = [f.name, ...(f.aliases ?? []), ...(f.off === undefined ? [] : [f.off])]
      .map((n) => `--${n}`)
      .join(', ');
    return [f.placeholder === undefined ? names : `${names} ${f.placeholder}`, f.help];
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([head]) => head.length)) + 2;
  return rows
    .map(([head, help]) => {
      const [first, ...rest] = help.split('\n');
      return [`  ${head.padEnd(width)}${first}`, ...rest.map((line) => `  ${' '.repeat(width)}${line}`)].join('\n');
    })
    .join('\n');
}
