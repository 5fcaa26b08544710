// The benchmarks' server processes: starting one, and what Linux's /proc
// says of it, its CPU time and its resident memory (each null where there
// is no /proc).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's CPU times. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time a process has used so far, user and system, in microseconds.
 * All its threads count: a runtime's helper threads (GC, compilers) are
 * part of what it costs.
 */
export function processCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(fields[11]) * 1e6) / CLOCK_TICKS, sys: (Number(fields[12]) * 1e6) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/** A process's resident memory in bytes. */
export function residentBytes(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

/**
 * Starts a benchmark server, `command argv`, and resolves to its child
 * process once it prints "ready" on stdout; rejects if it exits first or
 * has not started within `timeoutMs`. `label` names it in those errors.
 */
export function startServer(label, command, argv, timeoutMs = 10_000) {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NO_COLOR: '1' } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start`)), timeoutMs);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`${label} exited with ${code}`)));
  });
}
