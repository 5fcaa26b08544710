// Running a host's command for the conformance harness (hosts.mjs, wasmtime/run.mjs).
import { spawn } from 'node:child_process';

/**
 * Runs `command` to completion, killing it after `timeoutMs`; resolves to
 * { code, signal, stdout, stderr }, rejects only if it cannot start.
 */
export function execute(command, args, { timeoutMs = 120_000, cwd, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: env === undefined ? undefined : { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
