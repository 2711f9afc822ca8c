// bench/watch: watched directories (issue 3, item 6) against a real agent process on
// the local target, beside lsyncd (the peer to beat) measured in the same run:
// (1) save-to-landed latency of files written one by one into a drop watch;
// (2) a burst of files dropped at once (plain writes, and write `x.part` + rename);
// (3) a big tree in mirror mode: time until ready, peak RSS, the full first push, and a
//     restart with nothing changed that must push nothing.
// The tree stays on disk; the mirror agent's state_dir and target go on tmpfs by default,
// so that its full first push (which the restart check needs) measures the agent, not
// this disk's fsyncs, and the whole run fits in ~5 minutes (MIRROR_ON=disk to compare).
// lsyncd is the peer: `apt-get install -y --no-install-recommends lsyncd` (Debian's 2.2.3)
// first, or its rows are missing. Goals (issue 15), as ratios in the same run: at settle
// 50ms, save-to-landed p50 and the 1,000-file drop within 1.0x lsyncd rsync's; the 100k
// tree ready within 2x the bench's own readdir + lstat walk at <= 250 MB; <= 400 MB after
// its full push.
// Run with `npm run bench:watch` (builds first). Knobs: ONE_BY_ONE (200), DROP (1000),
// SETTLES ("default,50ms"), BIG_TREE (100000 files), TREE_DIRS (1000), TREE_DIR (keep
// the tree there between runs), TREE_PUSH_TIMEOUT (s, 600), MIRROR_ON (tmpfs | disk),
// LSYNCD ("rsync,direct"; "off").
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, watch, type FSWatcher } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fmt, percentile, startAgentProcess, stopChild, track, type AgentProcess } from './lib.js';

const ONE_BY_ONE = Number(process.env.ONE_BY_ONE ?? 200);
const DROP = Number(process.env.DROP ?? 1000);
const SETTLES = (process.env.SETTLES ?? 'default,50ms').split(',').filter(Boolean);
const BIG_TREE = Number(process.env.BIG_TREE ?? 100_000);
const TREE_DIRS = Math.min(BIG_TREE, Number(process.env.TREE_DIRS ?? 1000));
const TREE_PUSH_TIMEOUT = Number(process.env.TREE_PUSH_TIMEOUT ?? 600) * 1000;
/** Where the mirror agent's state_dir (spool, journal) and target live: tmpfs, or disk (the run's temp dir). */
const MIRROR_ON = process.env.MIRROR_ON ?? 'tmpfs';
const TMPFS = '/dev/shm';
const LSYNCD = (process.env.LSYNCD ?? 'rsync,direct').split(',').filter((m) => m === 'rsync' || m === 'direct');
const FILE_SIZE = 1024;
const TREE_FILE_SIZE = 128;
const DEFAULT_SETTLE_MS = 300;
/** Writers at once for the bursts and for creating the tree. */
const WRITERS = 32;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');
const settleMsOf = (settle: string) => (settle === 'default' ? DEFAULT_SETTLE_MS : parseDuration(settle));

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text);
  if (!m) throw new Error(`SETTLES: "${text}" is not a duration like 50ms or 1s`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/** Runs `work(i)` for i in [0, n) with at most `limit` at once. */
async function pool(n: number, limit: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, limit) }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

async function until(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${fmt(timeoutMs / 1000, 0)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------
// Landing detection: inotify on the target directory (fs.watch), a stat on each event
// for the awaited name, and a slow poll behind it in case an event is missed. A file
// has landed when it is at its final name with its full size.

interface Landings {
  /** Resolves with performance.now() when `name` is in the directory with `size` bytes. */
  wait(name: string, size: number, timeoutMs?: number): Promise<number>;
  close(): void;
}

function watchLandings(dir: string): Landings {
  const waiters = new Map<string, { size: number; resolve: (at: number) => void }>();
  const check = (name: string) => {
    const waiter = waiters.get(name);
    if (!waiter) return;
    stat(path.join(dir, name)).then(
      (s) => {
        if (s.size !== waiter.size || waiters.get(name) !== waiter) return;
        waiters.delete(name);
        waiter.resolve(performance.now());
      },
      () => undefined,
    );
  };
  const watcher: FSWatcher = watch(dir, (_event, name) => {
    if (name) check(name);
  });
  const poll = setInterval(() => waiters.forEach((_, name) => check(name)), 250);
  return {
    wait(name, size, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(name);
          reject(new Error(`${name} did not land in ${dir} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiters.set(name, {
          size,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        });
        check(name);
      });
    },
    close() {
      watcher.close();
      clearInterval(poll);
    },
  };
}

// ---------------------------------------------------------------------------------
// Scenarios 1 and 2, the same for the agent and for lsyncd: files written into `src`,
// awaited in `dst`.

interface DropFigures {
  p50: number;
  p99: number;
  /** Seconds from the first write until all landed. */
  plain: number;
  renamed: number;
  /** Seconds the writes alone took (the load generator's own floor). */
  plainWrites: number;
  renamedWrites: number;
}

async function dropScenarios(src: string, dst: string, tag: string): Promise<DropFigures> {
  const data = randomBytes(FILE_SIZE);
  const landings = watchLandings(dst);
  try {
    // 1. One by one: write a file, wait until it landed, then the next.
    const latencies: number[] = [];
    for (let i = 0; i < ONE_BY_ONE; i += 1) {
      const name = `${tag}-one-${i}.bin`;
      const t0 = performance.now();
      const landed = landings.wait(name, FILE_SIZE);
      await writeFile(path.join(src, name), data);
      latencies.push((await landed) - t0);
    }
    latencies.sort((a, b) => a - b);
    await sleep(300);

    // 2. A burst, written as fast as WRITERS writers go; plain writes, then write + rename.
    const burst = async (kind: 'plain' | 'renamed') => {
      const names = Array.from({ length: DROP }, (_, i) => `${tag}-${kind}-${i}.bin`);
      const t0 = performance.now();
      const landed = Promise.all(names.map((name) => landings.wait(name, FILE_SIZE, 120_000)));
      await pool(DROP, WRITERS, async (i) => {
        const file = path.join(src, names[i] as string);
        if (kind === 'plain') return writeFile(file, data);
        await writeFile(`${file}.part`, data);
        await rename(`${file}.part`, file);
      });
      const written = performance.now();
      const last = Math.max(...(await landed));
      await sleep(300);
      return [(last - t0) / 1000, (written - t0) / 1000] as const;
    };
    const [plain, plainWrites] = await burst('plain');
    const [renamed, renamedWrites] = await burst('renamed');
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), plain, renamed, plainWrites, renamedWrites };
  } finally {
    landings.close();
  }
}

// ---------------------------------------------------------------------------------
// The agent's log: JSON lines on stdout at level info, counted as they come.

class AgentLog {
  listening?: number;
  watching?: number;
  queued = 0;
  done = 0;
  failed = 0;
  /** performance.now() when `done` reached `doneGoal`. */
  doneAt?: number;
  private echoed = 0;

  constructor(private readonly doneGoal = Infinity) {}

  readonly onLine = (line: string): void => {
    if (line.includes('"msg":"task queued"')) this.queued += 1;
    else if (line.includes('"msg":"task done"')) {
      this.done += 1;
      if (this.done === this.doneGoal) this.doneAt = performance.now();
    } else if (line.includes('"msg":"task failed"')) this.failed += 1;
    else if (line.includes('"msg":"watching"')) this.watching ??= performance.now();
    else if (line.includes('"msg":"listening"')) this.listening ??= performance.now();
    // Warnings and errors are shown (the first few): they may explain a figure.
    if (/"level":(40|50|60)/.test(line) && this.echoed++ < 10) console.error(`agent: ${line}`);
  };
}

const watchYaml = (fields: Record<string, string | boolean | undefined>) =>
  `watch:\n  - ${Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
    .join('\n    ')}\n`;

interface AgentDropFigures extends DropFigures {
  settle: string;
  settleMs: number;
  rss: number;
}

async function agentDrop(work: string, settle: string): Promise<AgentDropFigures> {
  const dir = path.join(work, `drop-${settle}`);
  const src = path.join(dir, 'in');
  await mkdir(src, { recursive: true });
  const log = new AgentLog();
  const extraYaml = watchYaml({ name: 'drop', path: src, target: 'box', dest: '/srv/drop', mode: 'drop', settle: settle === 'default' ? undefined : settle });
  const agent = await startAgentProcess(dir, 'capacity: 5000, concurrency: 4, per_target: 2', { extraYaml, logLevel: 'info', onLog: log.onLine });
  try {
    await until('the drop watch to be ready', 30_000, () => log.watching !== undefined);
    const dst = path.join(agent.root, 'srv/drop');
    await mkdir(dst, { recursive: true });
    const figures = await dropScenarios(src, dst, 'agent');
    if (log.failed > 0) throw new Error(`${log.failed} pushes failed`);
    return { ...figures, settle, settleMs: settleMsOf(settle), rss: await agent.peakRssMb() };
  } finally {
    await agent.stop();
  }
}

// ---------------------------------------------------------------------------------
// The peer: lsyncd, inotify close_write, delay = 0, local dir → local dir.

function lsyncdVersion(): string | undefined {
  const probe = spawnSync('lsyncd', ['-version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  return /Version:\s*(\S+)/.exec(probe.stdout)?.[1] ?? 'unknown';
}

async function lsyncdDrop(work: string, mode: string): Promise<DropFigures> {
  const dir = path.join(work, `lsyncd-${mode}`);
  const src = path.join(dir, 'src');
  const dst = path.join(dir, 'dst');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  const config = path.join(dir, 'lsyncd.lua');
  await writeFile(
    config,
    `settings { nodaemon = true, inotifyMode = "CloseWrite", statusFile = ${JSON.stringify(path.join(dir, 'status'))} }
sync { default.${mode}, source = ${JSON.stringify(src)}, target = ${JSON.stringify(dst)}, delay = 0 }
`,
  );
  const child: ChildProcess = track(spawn('lsyncd', [config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }), { group: true });
  let started = false;
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      if (output.length < 50) output.push(line);
      if (/Startup of .* finished/.test(line)) started = true;
    });
  }
  try {
    await until('lsyncd to start', 30_000, () => {
      if (child.exitCode !== null) throw new Error(`lsyncd exited with ${child.exitCode}:\n${output.join('\n')}`);
      return started;
    });
    return await dropScenarios(src, dst, 'lsyncd');
  } finally {
    await stopChild(child, 5000);
  }
}

// ---------------------------------------------------------------------------------
// Scenario 3: the big tree, mirror mode.

/** Creates BIG_TREE small files in TREE_DIRS directories under `dir`, unless there already. */
async function ensureTree(dir: string): Promise<number | undefined> {
  const marker = `${dir}.json`;
  const want = JSON.stringify({ files: BIG_TREE, dirs: TREE_DIRS, size: TREE_FILE_SIZE });
  if ((await readFile(marker, 'utf8').catch(() => '')) === want) return undefined;
  await rm(dir, { recursive: true, force: true });
  const started = performance.now();
  const dirs = Array.from({ length: TREE_DIRS }, (_, d) => path.join(dir, `d${String(d).padStart(4, '0')}`));
  await pool(dirs.length, WRITERS, (d) => mkdir(dirs[d] as string, { recursive: true }));
  const data = Buffer.alloc(TREE_FILE_SIZE, 'x');
  await pool(BIG_TREE, WRITERS * 2, (i) => writeFile(path.join(dirs[i % TREE_DIRS] as string, `f${String(i).padStart(6, '0')}.txt`), data));
  await writeFile(marker, want);
  return (performance.now() - started) / 1000;
}

/** Walks `dir`: readdir of every directory and an lstat of every entry. Counts files. */
async function walk(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true });
  const counts = await Promise.all(
    entries.map(async (entry) => {
      const full = path.join(dir, entry.name);
      const s = await lstat(full);
      if (s.isDirectory()) return walk(full);
      return s.isFile() && !entry.name.startsWith('.') ? 1 : 0;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

interface MirrorRun {
  listening: number;
  ready: number;
  rssReady: number;
  rssEnd: number;
  /** Seconds from start until all BIG_TREE files landed (first run). */
  landed?: number;
  queued: number;
  stopped: number;
}

async function mirrorRun(dir: string, tree: string, first: boolean): Promise<MirrorRun> {
  const log = new AgentLog(BIG_TREE);
  const extraYaml = watchYaml({ name: 'tree', path: tree, target: 'box', dest: '/srv/tree', mode: 'mirror', initial: true });
  const queue = `capacity: ${Math.max(5000, BIG_TREE * 2)}, concurrency: 4, per_target: 2`;
  const agent: AgentProcess = await startAgentProcess(dir, queue, { extraYaml, logLevel: 'info', onLog: log.onLine });
  try {
    await until('the mirror watch to be ready', 120_000, () => log.watching !== undefined, 5);
    const rssReady = await agent.peakRssMb();
    const ready = ((log.watching as number) - agent.spawnedAt) / 1000;
    const listening = ((log.listening ?? NaN) - agent.spawnedAt) / 1000;
    let landed: number | undefined;
    if (first) {
      await until(`all ${BIG_TREE} files to be pushed (${log.done} so far)`, TREE_PUSH_TIMEOUT, () => log.doneAt !== undefined || log.failed > 0, 50);
      if (log.failed > 0) throw new Error(`${log.failed} pushes of the tree failed`);
      landed = ((log.doneAt as number) - agent.spawnedAt) / 1000;
    } else {
      // Nothing changed: anything queued would be within a moment of the scan.
      await sleep(DEFAULT_SETTLE_MS + 2000);
    }
    const rssEnd = await agent.peakRssMb();
    const t0 = performance.now();
    await agent.stop();
    return { listening, ready, rssReady, rssEnd, landed, queued: log.queued, stopped: (performance.now() - t0) / 1000 };
  } finally {
    await agent.stop();
  }
}

/** A temp dir on tmpfs with room for the mirror run, if MIRROR_ON=tmpfs and there is one. */
async function tmpfsDir(): Promise<string | undefined> {
  if (MIRROR_ON !== 'tmpfs') return undefined;
  const fs = await statfs(TMPFS).catch(() => undefined);
  // Spool copies and landed files of BIG_TREE small files: a page each, twice over, and slack.
  if (!fs || fs.bavail * fs.bsize < BIG_TREE * 4096 * 4 + 2 ** 30) return undefined;
  const dir = await mkdtemp(path.join(TMPFS, 'stevedore-bench-watch-'));
  tempDirs.push(dir);
  return dir;
}

async function bigTree(work: string) {
  const cache = process.env.TREE_DIR ? path.resolve(process.env.TREE_DIR) : work;
  const tree = path.join(cache, `tree-${BIG_TREE}`);
  const created = await ensureTree(tree);
  const t0 = performance.now();
  const walked = await walk(tree);
  const walkSeconds = (performance.now() - t0) / 1000;
  if (walked !== BIG_TREE) throw new Error(`the tree at ${tree} has ${walked} files, not ${BIG_TREE}`);
  const onTmpfs = await tmpfsDir();
  const dir = path.join(onTmpfs ?? work, 'mirror');
  const first = await mirrorRun(dir, tree, true);
  const inTarget = await walk(path.join(dir, 'box/srv/tree'));
  const second = await mirrorRun(dir, tree, false);
  const stateBytes = (await stat(path.join(dir, 'state/watch/tree.json')).catch(() => undefined))?.size ?? NaN;
  return { created, walkSeconds, first, second, inTarget, stateBytes, onTmpfs: onTmpfs !== undefined };
}

// ---------------------------------------------------------------------------------

const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-watch-'));
const tempDirs = [work];
const cleanUp = () => tempDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`);
    process.exitCode = 130;
    // lib's exit hook kills the agents and lsyncd; the temp dir goes after them.
    process.once('exit', cleanUp);
    process.exit();
  });
}

const began = performance.now();
try {
  const agentDrops: AgentDropFigures[] = [];
  for (const settle of SETTLES) agentDrops.push(await agentDrop(work, settle));

  const version = LSYNCD.length > 0 ? lsyncdVersion() : undefined;
  const peers: { mode: string; figures: DropFigures }[] = [];
  if (version) for (const mode of LSYNCD) peers.push({ mode, figures: await lsyncdDrop(work, mode) });

  const tree = BIG_TREE > 0 ? await bigTree(work) : undefined;

  const s = (n: number, digits = 2) => `${fmt(n, digits)} s`;
  const row = (label: string, figures: string, goal = '') => console.log(`    ${label.padEnd(44)}${figures.padEnd(26)}${goal}`);
  const settleName = (d: AgentDropFigures) => (d.settle === 'default' ? `${DEFAULT_SETTLE_MS}ms (default)` : d.settle);
  console.log(`\nbench/watch — local target, Node ${process.version}, ${availableParallelism()} CPUs, ${fmt((performance.now() - began) / 1000, 0)} s in all`);
  console.log(`  save-to-landed, ${ONE_BY_ONE} files of ${FILE_SIZE} B written one by one (p50 / p99)`);
  for (const d of agentDrops) {
    const goal = d.settleMs + 50;
    row(`stevedore drop, settle ${settleName(d)}`, `${fmt(d.p50)} / ${fmt(d.p99)} ms`, `goal p50 ≤ ${goal} ms: ${mark(d.p50 <= goal)}`);
  }
  for (const p of peers) row(`lsyncd ${version} default.${p.mode}, delay = 0`, `${fmt(p.figures.p50)} / ${fmt(p.figures.p99)} ms`);
  const rsync = peers.find((p) => p.mode === 'rsync')?.figures;
  const fifty = agentDrops.find((d) => d.settleMs === 50);
  if (rsync && fifty) row('  settle 50ms p50 / lsyncd rsync p50', `${fmt(fifty.p50 / rsync.p50, 2)}×`, `goal ≤ 1.0×: ${mark(fifty.p50 <= rsync.p50)}`);
  if (!version) console.log(`    lsyncd: ${LSYNCD.length === 0 ? 'skipped (LSYNCD=off)' : 'not installed: no comparison (apt-get install --no-install-recommends lsyncd)'}`);
  console.log(`  ${DROP.toLocaleString('en-US')} files of ${FILE_SIZE} B at once (${WRITERS} writers), first write → all landed (plain writes / .part + rename)`);
  for (const d of agentDrops) {
    const goal = (d.settleMs + 1000) / 1000;
    row(`stevedore drop, settle ${settleName(d)}`, `${s(d.plain)} / ${s(d.renamed)}`, `goal ≤ ${fmt(goal, 2)} s: ${mark(d.plain <= goal)} / ${mark(d.renamed <= goal)}`);
  }
  for (const p of peers) row(`lsyncd default.${p.mode}, delay = 0`, `${s(p.figures.plain)} / ${s(p.figures.renamed)}`);
  if (rsync && fifty) {
    const ratio = `${fmt(fifty.plain / rsync.plain, 2)}× / ${fmt(fifty.renamed / rsync.renamed, 2)}×`;
    row('  settle 50ms / lsyncd rsync', ratio, `goal ≤ 1.0×: ${mark(fifty.plain <= rsync.plain)} / ${mark(fifty.renamed <= rsync.renamed)}`);
  }
  const writes = [...agentDrops, ...peers.map((p) => p.figures)];
  row('  the writes alone (fastest / slowest run)', `${s(Math.min(...writes.map((w) => w.plainWrites)))}–${s(Math.max(...writes.map((w) => w.plainWrites)))} / ${s(Math.min(...writes.map((w) => w.renamedWrites)))}–${s(Math.max(...writes.map((w) => w.renamedWrites)))}`);
  row('agent peak RSS, drop runs', agentDrops.map((d) => `${fmt(d.rss, 0)} MB`).join(' / '));
  if (tree) {
    const { first, second } = tree;
    const landed = first.landed as number;
    console.log(`  ${BIG_TREE.toLocaleString('en-US')} files of ${TREE_FILE_SIZE} B in ${TREE_DIRS.toLocaleString('en-US')} dirs, mirror mode, initial: true; tree on disk, agent state_dir + target on ${tree.onTmpfs ? `tmpfs (${TMPFS}; MIRROR_ON=disk for disk)` : 'disk'}`);
    row('tree created (in the bench, 64 writers)', tree.created === undefined ? 'reused (TREE_DIR)' : s(tree.created, 1));
    row('floor: readdir + lstat walk, in the bench', s(tree.walkSeconds));
    row('1st start: listening / ready ("watching")', `${s(first.listening)} / ${s(first.ready)}`, `goal ready ≤ 15 s: ${mark(first.ready <= 15)}`);
    row('  ready (from spawn) / the walk', `${fmt(first.ready / tree.walkSeconds, 2)}×`, `goal ≤ 2×: ${mark(first.ready <= 2 * tree.walkSeconds)}`);
    row('1st start: peak RSS at ready / after push', `${fmt(first.rssReady, 0)} / ${fmt(first.rssEnd, 0)} MB`, `goal ≤ 250 / 400 MB: ${mark(first.rssReady <= 250)} / ${mark(first.rssEnd <= 400)}`);
    row('1st start: all pushed (full reconcile)', `${s(landed, 1)} = ${fmt(BIG_TREE / landed, 0)} files/s`, `${tree.inTarget.toLocaleString('en-US')} files in the target`);
    row('1st stop (drain, save mirror state)', s(first.stopped), `state file ${fmt(tree.stateBytes / 2 ** 20, 1)} MiB`);
    row('restart, nothing changed: listening / ready', `${s(second.listening)} / ${s(second.ready)}`, `goal ready ≤ 15 s: ${mark(second.ready <= 15)}`);
    row(`restart: peak RSS at ready / ready + ${fmt((DEFAULT_SETTLE_MS + 2000) / 1000, 1)} s`, `${fmt(second.rssReady, 0)} / ${fmt(second.rssEnd, 0)} MB`, `goal ≤ 400 MB: ${mark(second.rssEnd <= 400)}`);
    row('restart: tasks queued', String(second.queued), `goal 0: ${mark(second.queued === 0)}`);
  }
} finally {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
