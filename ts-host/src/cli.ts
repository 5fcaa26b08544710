#!/usr/bin/env node
/**
 * The `wasmloop` command: serves a module's fetch handler, or runs an
 * application function, on a loop, as uvicorn runs an ASGI app.
 *
 *   wasmloop serve <module>[:<export>] [options]
 *   wasmloop run <module>:<function> [options]
 *
 * This file is the executable; the command lives in cli/: main.ts (the
 * table of commands, help and exit statuses), args.ts (flags), run.ts and
 * serve.ts (the commands), app.ts (running an application in one process)
 * and supervisor.ts (the process manager of `--workers N`). docs/cli.md
 * documents it.
 */
import { main } from './cli/main.js';

// Exits once the command is done, even if the application left host timers or handles behind.
process.exit(await main(process.argv.slice(2)));
