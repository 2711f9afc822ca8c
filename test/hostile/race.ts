// The race harness: a writer process (racer.py) swapping names in a watched folder as
// fast as the kernel allows, while the agent works on the same paths; and a real
// `stevedore run` process to probe while it does.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { start } from '../helpers/cli.js';
import { freePort } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const RACER = fileURLToPath(new URL('./racer.py', import.meta.url));

/**
 * Swaps each pair of names for `seconds`: `exchange` atomically (renameat2
 * RENAME_EXCHANGE), `blink` likewise with the first state the brief one, `flip` as two
 * renames (one pair); see racer.py. Resolves with the number of
 * renames made; the names end as they started. `pauseUs` between swaps leaves the agent
 * time to work during the race. Relative names with `cwd` follow that directory's inode:
 * the race goes on when the directory is moved (into a watched folder, say).
 */
export function race(mode: 'exchange' | 'blink' | 'flip', pairs: [string, string][], seconds: number, pauseUs = 0, cwd?: string): Promise<number> {
  const child = spawn('python3', [RACER, mode, String(seconds), String(pauseUs), ...pairs.flat()], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`racer.py exited ${code}: ${err}`))));
  });
}

export interface RunningAgent {
  url: string;
  child: ChildProcessWithoutNullStreams;
  logs: Record<string, unknown>[];
  /** Where the `box` local target lands files (the container stand-in). */
  box: string;
}

/**
 * `stevedore run` as a process (the built CLI: call useBuiltCli() in the suite), with a
 * local target `box`, a route /drop/files and the given `watch:` entries. `wrap`: a
 * command that runs it (setpriv, to run it as another user).
 */
export async function runAgent(dir: string, watch: Record<string, unknown>[], wrap: string[] = []): Promise<RunningAgent> {
  const port = await freePort();
  const box = path.join(dir, 'box');
  const file = path.join(dir, 'stevedore.yaml');
  const config = {
    version: 1,
    state_dir: path.join(dir, 'state'),
    log: { level: 'debug', format: 'json' },
    targets: { box: { runtime: 'local', root: box } },
    queue: { shutdown_grace: '2s' },
    http: { listen: `127.0.0.1:${port}`, min_free: '1MiB', routes: [{ name: 'files', path: '/drop/files', target: 'box', dest: '/srv/files' }] },
    watch: watch.map((entry) => ({ target: 'box', ...entry })),
  };
  await writeFile(file, stringify(config));
  const child = start(['run', '-c', file], { wrap });
  const logs: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, { timeoutMs: 15_000, what: 'the agent to be ready' });
  return { url, child, logs, box };
}

/** One probe of a running agent: its answer (or the error) and how long it took. */
export async function probe(url: string, init?: RequestInit): Promise<{ ok: boolean; ms: number; status?: number; error?: string }> {
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(PROBE_TIMEOUT) });
    await res.arrayBuffer();
    return { ok: true, ms: performance.now() - started, status: res.status };
  } catch (error) {
    return { ok: false, ms: performance.now() - started, error: (error as Error).message };
  }
}

// A hung agent shows as a probe that gets no answer in this long; anything an agent
// under a writer's attack answers late but answers passes (its figures are printed).
const PROBE_TIMEOUT = 5000;

/** The process's resident set, now and at its peak (VmRSS, VmHWM), in MB. */
export async function rssOf(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}
