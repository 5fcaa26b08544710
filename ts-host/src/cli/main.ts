/**
 * The `wasmloop` command's dispatcher: a table of commands, each with its
 * flags (args.ts) and its `execute`. This file owns the help text, the
 * mapping of failures to exit statuses (a UsageError is 2, anything else
 * escaping a command 1), and nothing about what a command does.
 *
 * A command is added by writing its module (as run.ts) and listing it in
 * COMMANDS.
 */
import { type Flag, type ParsedFlags, UsageError, flagHelp, parseFlags } from './args.js';
import { suggestion } from '../options.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';

export interface Command {
  name: string;
  /** The usage line after `wasmloop `: `run <module>:<function> [options]`. */
  synopsis: string;
  /** One line for the list of commands. */
  summary: string;
  /** What it does, for its --help. */
  about: string;
  flags: readonly Flag[];
  /** Runs the command; resolves with the exit status. UsageError for bad input. */
  execute(parsed: ParsedFlags): Promise<number>;
}

const COMMANDS: readonly Command[] = [runCommand, serveCommand];

/** The help of one command. */
function commandUsage(command: Command): string {
  return `Usage: wasmloop ${command.synopsis}\n\n${command.about}\n\nOptions:\n${flagHelp(command.flags)}\n`;
}

/** The help of the whole command: the list of commands, then each one's. */
function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const list = COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n');
  return [`Usage: wasmloop <command> [options]\n\nCommands:\n${list}\n`, ...COMMANDS.map(commandUsage)].join('\n');
}

/** Runs the command line `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  const asksHelp = (args: readonly string[]) => {
    const end = args.indexOf('--');
    return (end < 0 ? args : args.slice(0, end)).some((a) => a === '-h' || a === '--help');
  };
  try {
    if (name === undefined || name === '-h' || name === '--help') {
      console.log(usage());
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (command === undefined) {
      const names = COMMANDS.map((c) => c.name);
      const meant = suggestion(name, names);
      throw new UsageError(
        `unknown command '${name}' ${meant !== null ? `(did you mean '${meant}'?)` : `(the commands are: ${names.join(', ')}; see --help)`}`,
      );
    }
    if (asksHelp(rest)) {
      console.log(commandUsage(command));
      return 0;
    }
    return await command.execute(parseFlags(rest, command.flags));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`wasmloop: ${error.message}`);
      return 2;
    }
    console.error(`wasmloop: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}
