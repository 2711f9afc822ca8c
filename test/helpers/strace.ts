// The system calls this test process makes while `during` runs, as strace sees them
// from outside (every thread: the main one and libuv's pool). What a file system call
// promises (a flush before a link) cannot be seen from JavaScript.
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from './temp.js';

/** Locally a test that needs strace may skip without it (test/runtimes/setup.sh installs it); never under CI=true. */
export const noStrace = process.env.CI !== 'true' && spawnSync('strace', ['-V']).error !== undefined;

export interface Syscall {
  name: string;
  args: string;
  result: string;
  /** Index of the line where it began, and of the line where it returned: their order is the calls' order. */
  start: number;
  end: number;
}

export async function traceCalls(calls: string[], during: () => Promise<void>): Promise<Syscall[]> {
  const out = path.join(await tempDir(), 'strace.out');
  const strace = spawn('strace', ['-f', '-p', String(process.pid), '-e', `trace=${calls.join(',')}`, '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve, reject) => {
    strace.once('error', reject);
    strace.once('exit', resolve);
  });
  // "Process N attached with T threads" comes once every thread is traced, libuv's
  // pool included (threads made later are followed by -f): no wait beyond it.
  await new Promise<void>((resolve, reject) => {
    let said = '';
    strace.stderr.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes(' attached')) resolve();
    });
    exited.then((code) => reject(new Error(`strace exited with ${code} before attaching:\n${said}`)), reject);
  });
  try {
    await during();
  } finally {
    strace.kill('SIGINT');
    await exited.catch(() => undefined);
  }
  return parse(await readFile(out, 'utf8'));
}

// `PID name(args) = result`, or split across two lines when another thread's call came
// in between: `PID name(args <unfinished ...>` then `PID <... name resumed>rest) = result`.
function parse(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const open = new Map<string, { head: string; start: number }>();
  text.split('\n').forEach((line, index) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const [, pid, rest] = m as unknown as [string, string, string];
    let whole = rest;
    let start = index;
    if (rest.endsWith('<unfinished ...>')) return void open.set(pid, { head: rest.slice(0, -'<unfinished ...>'.length).trimEnd(), start: index });
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      const began = open.get(pid);
      if (!began) return;
      open.delete(pid);
      whole = `${began.head}${resumed[1] as string}`;
      start = began.start;
    }
    const call = /^(\w+)\((.*)\)\s+=\s+(.*)$/.exec(whole);
    if (call) calls.push({ name: call[1] as string, args: call[2] as string, result: call[3] as string, start, end: index });
  });
  return calls;
}
