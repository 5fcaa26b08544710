// System calls a server makes per round trip of the TCP echo, counted in
// the kernel while the load client runs a fixed number of round trips.
//
// A count moves with the machine's load far less than a time: at one
// connection every round trip is a wakeup, and the reads and writes per
// wakeup are the same on any machine. The polls are not quite: Node turns
// on libuv's idle-time metrics, and with them libuv polls with a zero
// timeout before it blocks, a call that comes back empty whenever the next
// message has not arrived yet (timing). With more connections a wakeup
// serves several round trips, and how many depends on timing too.
//
// Counted with `perf stat` on the kernel's syscall tracepoints (no stop per
// call: the server runs at full speed), or, where perf cannot, `strace -c
// -f` (every call stops the server, which changes how calls batch: marked
// as such). Null where neither works.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The calls counted one by one, grouped as the report shows them. */
export const GROUPS = {
  // libuv's poll (epoll_pwait), and a poll of the program's own (the
  // selector's epoll set nested in libuv's, Python's selectors).
  pwait: ['epoll_pwait', 'epoll_pwait2', 'ppoll', 'pselect6'],
  wait: ['epoll_wait', 'poll', 'select'],
  read: ['read', 'readv', 'recvfrom', 'recvmsg'],
  write: ['write', 'writev', 'sendto', 'sendmsg'],
};

/** 'perf', 'strace' or null: how this machine can count a process's system calls. */
export function syscallCounter() {
  try {
    execFileSync(
      'perf',
      [
        'stat',
        '-x,',
        '-e',
        'raw_syscalls:sys_enter,syscalls:sys_enter_epoll_pwait',
        '-e',
        'syscalls:sys_exit_epoll_pwait',
        '--filter',
        'ret == 0',
        'true',
      ],
      { stdio: 'pipe' },
    );
    return 'perf';
  } catch {
    // No perf, or no tracepoints (unprivileged, or a kernel without them).
  }
  try {
    execFileSync('strace', ['-c', '-o', '/dev/null', 'true'], { stdio: 'pipe' });
    return 'strace';
  } catch {
    return null;
  }
}

/**
 * Counts `pid`'s system calls (all its threads) while `work()` runs; returns
 * `{ total, byName }` once `work` settles, together with its result
 * (`total` null if the counter failed).
 */
export async function countSyscalls(tool, pid, work) {
  const out = path.join(os.tmpdir(), `wasmloop-syscalls-${process.pid}-${pid}.txt`);
  const names = Object.values(GROUPS).flat();
  const args =
    tool === 'perf'
      ? [
          'stat',
          '-x,',
          '-o',
          out,
          '-e',
          ['raw_syscalls:sys_enter', ...names.map((n) => `syscalls:sys_enter_${n}`)].join(','),
          // libuv's polls that came back with nothing (its zero-timeout poll
          // before a blocking one, with Node's idle-time metrics).
          '-e',
          'syscalls:sys_exit_epoll_pwait',
          '--filter',
          'ret == 0',
          '-p',
          String(pid),
        ]
      : ['-c', '-f', '-o', out, '-p', String(pid)];
  const counter = spawn(tool, args, { stdio: 'ignore' });
  // perf and strace attach asynchronously: give them a moment first.
  await new Promise((resolve) => setTimeout(resolve, 300));
  let result;
  try {
    result = await work();
  } finally {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const exited = new Promise((resolve) => counter.on('exit', resolve));
    counter.kill('SIGINT');
    await exited;
  }
  let text;
  try {
    text = readFileSync(out, 'utf8');
  } catch {
    // The counter failed (it could not attach, say): no counts, but the run stands.
    return { result, total: null, byName: {} };
  }
  rmSync(out, { force: true });
  const byName = {};
  let total = 0;
  if (tool === 'perf') {
    for (const line of text.split('\n')) {
      const [value, , event] = line.split(',');
      if (event === undefined || !/^\d+$/.test(value)) continue;
      if (event === 'raw_syscalls:sys_enter') total = Number(value);
      else if (event === 'syscalls:sys_exit_epoll_pwait') byName['epoll_pwait:empty'] = Number(value);
      else byName[event.replace('syscalls:sys_enter_', '')] = Number(value);
    }
  } else {
    // strace -c: "% time seconds usecs/call calls [errors] syscall", then a total row.
    for (const line of text.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5 || !/^\d/.test(fields[0])) continue;
      const name = fields[fields.length - 1];
      const calls = Number(fields[3]);
      if (name === 'total') total = calls;
      else byName[name] = calls;
    }
  }
  // Nothing counted: the counter did not attach.
  return { result, total: total > 0 ? total : null, byName };
}

/**
 * Per round trip: total, each group (the rest is `other`), and
 * `pwaitEmpty`, the epoll_pwait calls that found nothing (null where the
 * counter cannot tell).
 */
export function perRoundTrip({ total, byName }, rounds) {
  const empty = byName['epoll_pwait:empty'];
  const out = { total: total / rounds, pwaitEmpty: empty === undefined ? null : empty / rounds };
  let grouped = 0;
  for (const [group, names] of Object.entries(GROUPS)) {
    const n = names.reduce((sum, name) => sum + (byName[name] ?? 0), 0);
    out[group] = n / rounds;
    grouped += n;
  }
  out.other = (total - grouped) / rounds;
  return out;
}
