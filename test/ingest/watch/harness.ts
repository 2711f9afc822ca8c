// Watched-folder tests run a real agent on real temp directories: `in` is the watched
// folder, the `box` local target's root stands in for the container. A recording target
// wraps the real one, so a test can count pushes and see what each one carried.
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { startAgent, type StartOptions, type TestAgent } from '../../helpers/agent.js';
import { wrapTargets } from '../../helpers/targets.js';
import { tempDir } from '../../helpers/temp.js';
import { waitFor } from '../../helpers/wait.js';

/** Container directory every watch in these tests pushes to. */
export const DEST = '/srv/in';

export interface Push {
  op: 'put' | 'delete';
  dest: string;
  /** What the staged file held when the target was handed it (puts only). */
  content?: string;
}

export interface Recorder {
  pushes: Push[];
  createTarget: NonNullable<StartOptions['createTarget']>;
  /** Puts to `rel` (relative to DEST). */
  puts(rel: string): Push[];
  deletes(): string[];
}

export function recorder(): Recorder {
  const pushes: Push[] = [];
  const createTarget = wrapTargets((real) => ({
    name: real.name,
    runtime: real.runtime,
    async push(items, signal) {
      for (const item of items) {
        pushes.push(item.op === 'put' ? { op: 'put', dest: item.dest, content: await readFile(item.source, 'utf8') } : { op: 'delete', dest: item.dest });
      }
      return real.push(items, signal);
    },
  }));
  return {
    pushes,
    createTarget,
    puts: (rel) => pushes.filter((p) => p.op === 'put' && p.dest === `${DEST}/${rel}`),
    deletes: () => pushes.filter((p) => p.op === 'delete').map((p) => p.dest),
  };
}

export interface Setup {
  /** The test's directory: state/, box/ and in/ live here; reuse it across restarts. */
  base: string;
  /** The watched folder. */
  dir: string;
}

export async function setup(): Promise<Setup> {
  const base = await tempDir('stevedore-watch-');
  const dir = path.join(base, 'in');
  await mkdir(dir);
  return { base, dir };
}

/** One watch named `in` on `s.dir` into box:/srv/in; `watch` overrides its keys. */
export function startWatching(s: Setup, watch: Record<string, unknown> = {}, options: StartOptions = {}): Promise<TestAgent> {
  const entry = { name: 'in', path: s.dir, target: 'box', dest: DEST, mode: 'drop', settle: '150ms', ...watch };
  return startAgent({ ...options, dir: s.base, extra: stringify({ watch: [entry] }) });
}

/** Host path of a file landed at DEST/rel. */
export const landedPath = (t: TestAgent, rel: string) => path.join(t.root, DEST, rel);

export const exists = (file: string) => stat(file).then(() => true, () => false);

export const readOrUndefined = (file: string) => readFile(file, 'utf8').catch(() => undefined);

/** Waits until DEST/rel in the container holds `content`. */
export async function waitLanded(t: TestAgent, rel: string, content: string, timeoutMs = 10_000): Promise<void> {
  const file = landedPath(t, rel);
  await waitFor(async () => (await readOrUndefined(file)) === content, { timeoutMs, what: `${rel} to land holding ${JSON.stringify(content)}` });
}

export async function waitGone(file: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => !(await exists(file)), { timeoutMs, what: `${file} to go` });
}

/** Writes files (relative path → content) under `dir`, creating directories. */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
}

/** Every file under `dir`, relative, sorted. */
export async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Nothing in flight: the watch has nothing settling or waiting to be staged, and every
 * task the agent queued has finished — seen twice in a row, 100 ms apart, so that a
 * file between the settler and the journal is not missed.
 */
export async function waitIdle(t: TestAgent, timeoutMs = 10_000): Promise<void> {
  const idle = () => {
    const open = new Set<unknown>();
    for (const line of t.logs) {
      if (line.msg === 'task queued') open.add(line.taskId);
      if (line.msg === 'task done' || line.msg === 'task failed') open.delete(line.taskId);
    }
    return open.size === 0 && t.agent.watches.every((w) => w.status().pending === 0);
  };
  let streak = 0;
  await waitFor(() => (idle() ? ++streak >= 2 : (streak = 0) > 0), { timeoutMs, intervalMs: 100, what: 'the agent to be idle' });
}

/**
 * A barrier for "nothing else happens": writes a sentinel file, waits for it to land
 * and for the agent to be idle. Anything written before the sentinel has settled by then.
 */
export async function barrier(t: TestAgent, dir: string, name = 'zz-sentinel.txt'): Promise<void> {
  await writeFile(path.join(dir, name), name);
  await waitLanded(t, name, name);
  await waitIdle(t);
}
