// bench/fleet (issue 13, SPEC §7), in one run on this machine, into real containers
// (test/runtimes/setup.sh), each figure beside its reference measured in the same run:
// (1) FILES × 4 KiB uploaded over HTTP (c=16) to an agent process whose target is a fleet
//     of 3 containers selected by label: deliveries landed per second across members
//     (3 × FILES / time until all landed), beside the same upload into one container
//     target; alternating rounds, medians. Goal ≥ 2×.
// (2) A mirror watch of MIRROR_FILES files → a fleet of 2; one member is removed and
//     re-created under its name: seconds from the re-created container's start (its
//     `run`/`launch` returned) until it holds every file (an in-container poll), checked
//     identical after (sha256 of every file, in the container), beside one raw
//     `tar -c | <runtime> exec -i … tar -x` of the folder; alternating rounds, medians.
//     Goal ≤ 1.5×.
// (3) Membership latency, STARTS times each: a stopped member started again (the retained
//     file removed from it before), and a new container that matches: from the runtime's
//     own `start` event (its timestamp, read from a `docker events` / `incus monitor` of
//     this bench's) to the landing of the fleet's one retained file in it (its ctime,
//     stat'ed from the host through the container's root filesystem every 5 ms: the
//     rename that lands it, so an upper bound on its first byte). Goal p50 ≤ 500 ms.
// Run with `npm run bench:fleet` (builds first). Knobs: RUNTIMES, PARTS (upload,recreate,
// starts), FILES (1000), ROUNDS (3), MIRROR_FILES (10000), MIRROR_DIRS (100),
// MIRROR_SIZE (1024 B), MIRROR_ROUNDS (3), STARTS (10), LOG_LEVEL (warn), QUEUE (the
// agent's `queue:` keys, as YAML flow).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import {
  alternate, cli, containerName, createContainer, inContainer, incusLike, landedIn, median, rawTar, removeContainer, rootfsOf, runtimesFromEnv,
  seconds, startContainer, stopContainer, type Runtime,
} from './containers.js';
import { fmt, put, startAgentProcess, track, stopChild, type AgentProcess } from './lib.js';

const RUNTIMES = runtimesFromEnv();
const PARTS = new Set((process.env.PARTS ?? 'upload,recreate,starts').split(','));
const FILES = Number(process.env.FILES ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const MIRROR_FILES = Number(process.env.MIRROR_FILES ?? 10_000);
const MIRROR_DIRS = Math.min(MIRROR_FILES, Number(process.env.MIRROR_DIRS ?? 100));
const MIRROR_SIZE = Number(process.env.MIRROR_SIZE ?? 1024);
const MIRROR_ROUNDS = Number(process.env.MIRROR_ROUNDS ?? 3);
const STARTS = Number(process.env.STARTS ?? 10);
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'warn';
const CONCURRENCY = 16;
const QUEUE = process.env.QUEUE ?? 'capacity: 50000, concurrency: 4, per_target: 2';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');
const fleetTarget = (runtime: Runtime, tag: string) => `{ runtime: ${runtime}, select: { labels: { fleet: ${tag} } } }`;

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 5): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${fmt(timeoutMs / 1000, 0)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

function agentFor(work: string, name: string, target: string, extra: { route?: string; extraYaml?: string } = {}): Promise<AgentProcess> {
  return startAgentProcess(path.join(work, name), QUEUE, { target, logLevel: LOG_LEVEL, ...extra });
}

/** PUTs `count` files of 4 KiB under `/drop/<dir>/`, CONCURRENCY at once. */
async function upload(agentProc: AgentProcess, dir: string, count: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const data = randomBytes(4096);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(count, CONCURRENCY) }, async () => {
    while (next < count) {
      const i = next++;
      const status = await put(`${agentProc.url}/drop/${dir}/f${i}.bin`, data, data.length, agent);
      if (status !== 202) throw new Error(`upload ${i} answered ${status}`);
    }
  }));
  agent.destroy();
}

// ---------------------------------------------------------------------------------
// (1) Fan-out throughput: a fleet of 3 against one container.

async function uploads(runtime: Runtime, work: string): Promise<string[]> {
  const tag = containerName('fb-up');
  const members = await Promise.all([1, 2, 3].map((i) => createContainer(runtime, { name: `${tag}-${i}`, labels: { fleet: tag } })));
  try {
    const into = async (round: number, kind: string, target: string, containers: string[]) => {
      await Promise.all(containers.map((c) => inContainer(runtime, c, 'rm -rf /srv/http')));
      const agentProc = await agentFor(work, `up-${runtime}-${kind}-${round}`, target);
      const landed = await Promise.all(containers.map((c) => landedIn(runtime, c, '/srv/http', FILES, 100)));
      const started = performance.now();
      await upload(agentProc, 'http', FILES);
      await Promise.all(landed.map((done) => done()));
      const rate = (containers.length * FILES) / seconds(started);
      await agentProc.stop();
      return rate;
    };
    const [fleet, one] = await alternate(ROUNDS, (round) => into(round, 'fleet', fleetTarget(runtime, tag), members),
      (round) => into(round, 'one', `{ runtime: ${runtime}, container: ${members[0]} }`, [members[0] as string]));
    return [runtime, fmt(fleet, 0), fmt(one, 0), `${fmt(fleet / one, 2)}×`, mark(fleet >= 2 * one)];
  } finally {
    await Promise.all(members.map((c) => removeContainer(runtime, c)));
  }
}

// ---------------------------------------------------------------------------------
// (2) A re-created member of a mirror, against one raw tar of the folder.

async function makeTree(dir: string): Promise<void> {
  await Promise.all(Array.from({ length: MIRROR_DIRS }, (_, d) => mkdir(path.join(dir, `d${d}`), { recursive: true })));
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < MIRROR_FILES) {
      const i = next++;
      await writeFile(path.join(dir, `d${i % MIRROR_DIRS}`, `f${i}.bin`), randomBytes(MIRROR_SIZE));
    }
  }));
}

// The same listing-with-checksums on the host (GNU tools) and in the container (busybox): one sha256 of it.
const digestScript = (dir: string) => `cd ${dir} && find . -type f ! -path '*/.stevedore-*' | LC_ALL=C sort | xargs sha256sum | sha256sum`;

async function recreate(runtime: Runtime, work: string, tree: string): Promise<string[]> {
  const tag = containerName('fb-mi');
  const [keep, renewed] = [`${tag}-1`, `${tag}-2`];
  const make = (name: string) => createContainer(runtime, { name, labels: { fleet: tag } });
  await Promise.all([make(keep), make(renewed)]);
  const raw = await createContainer(runtime, { name: `${tag}-raw` });
  const want = (await execa('sh', ['-c', digestScript(tree)])).stdout;
  let agentProc: AgentProcess | undefined;
  try {
    agentProc = await agentFor(work, `mirror-${runtime}`, fleetTarget(runtime, tag), {
      extraYaml: `watch:\n  - { name: tree, path: ${tree}, target: box, dest: /srv/tree, mode: mirror, initial: true }`,
    });
    const first = performance.now();
    const both = await Promise.all([keep, renewed].map((c) => landedIn(runtime, c, '/srv/tree', MIRROR_FILES, 250)));
    await Promise.all(both.map((done) => done()));
    const firstPush = seconds(first);
    const [ours, theirs] = await alternate(MIRROR_ROUNDS, async () => {
      await removeContainer(runtime, renewed);
      await make(renewed); // `run -d` / `launch` return once it runs
      const started = performance.now();
      const landed = await landedIn(runtime, renewed, '/srv/tree', MIRROR_FILES, 100);
      await landed();
      const took = seconds(started);
      const got = await inContainer(runtime, renewed, digestScript('/srv/tree'));
      if (got !== want) throw new Error(`the re-created member's /srv/tree differs from the folder (${got} ≠ ${want})`);
      return took;
    }, () => rawTar(runtime, raw, tree, '/srv/raw'));
    return [runtime, fmt(ours, 2), fmt(theirs, 2), `${fmt(ours / theirs, 2)}×`, mark(ours <= 1.5 * theirs), fmt(firstPush, 1)];
  } finally {
    await agentProc?.stop();
    await Promise.all([keep, renewed, `${tag}-raw`].map((c) => removeContainer(runtime, c)));
  }
}

// ---------------------------------------------------------------------------------
// (3) Membership latency: start event → the retained file landed in the member.

/** The runtime's `start` events of containers labelled fleet=`tag`, by name: the event's own time (epoch ms). */
function followStarts(runtime: Runtime, tag: string) {
  const args = incusLike(runtime)
    ? ['monitor', '--type=lifecycle', '--format', 'json']
    : ['events', '--format', runtime === 'docker' ? '{{json .}}' : 'json', '--filter', 'type=container', '--filter', 'event=start', '--filter', `label=fleet=${tag}`];
  const child = track(spawn(cli(runtime), args, { stdio: ['ignore', 'pipe', 'inherit'] }));
  const starts: { name: string; at: number }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // blank lines between Incus's events
    }
    const start = incusLike(runtime) ? incusStart(event) : dockerStart(event);
    if (start) starts.push(start);
  });
  return {
    /** The first start of `name` at or after `after` (epoch ms). */
    async of(name: string, after: number): Promise<number> {
      return until(`the start event of ${name}`, 10_000, async () => starts.find((s) => s.name === name && s.at >= after - 5)?.at);
    },
    stop: () => stopChild(child, 1000),
  };
}

// Incus/LXD: {"timestamp":"…Z","metadata":{"action":"instance-started","source":"/1.0/instances/NAME"}}
function incusStart(event: Record<string, unknown>): { name: string; at: number } | undefined {
  const metadata = event.metadata as { action?: string; source?: string } | undefined;
  if (metadata?.action !== 'instance-started') return undefined;
  return { name: String(metadata.source).split('/').pop() as string, at: epochMs(String(event.timestamp)) };
}

// Docker: {"Action":"start","Actor":{"Attributes":{"name":…}},"timeNano":…}; Podman: {"Name":…,"Status":"start","time":…}.
function dockerStart(event: Record<string, unknown>): { name: string; at: number } | undefined {
  const actor = event.Actor as { Attributes?: { name?: string } } | undefined;
  const name = actor?.Attributes?.name ?? (event.Name as string | undefined);
  const nano = event.timeNano ?? event.TimeNano;
  const at = nano !== undefined ? Number(BigInt(String(nano)) / 1000n) / 1000 : epochMs(String(event.time ?? event.Time));
  return name === undefined ? undefined : { name, at };
}

/** An RFC 3339 time with up to nanoseconds, in epoch ms with the sub-ms part kept. */
function epochMs(text: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return Number(text) * 1000;
  return Date.parse(`${m[1]}${m[3]}`) + Number(`0.${m[2] ?? '0'}`) * 1000;
}

/** When `file` (a path in the container) landed: its ctime, stat'ed through the container's root filesystem. */
async function landingOf(runtime: Runtime, container: string, file: string): Promise<number> {
  const root = await rootfsOf(runtime, container);
  const ctimeNs = await until(`${file} in ${container}`, 30_000, () => stat(path.join(root, file), { bigint: true }).then((s) => s.ctimeNs, () => undefined));
  return Number(ctimeNs / 1000n) / 1000;
}

async function memberRunning(agentProc: AgentProcess, name: string, running: boolean): Promise<void> {
  await until(`the agent to see ${name} ${running ? 'running' : 'stopped'}`, 30_000, async () => {
    const status = (await (await fetch(`${agentProc.url}/status`)).json()) as { fleets?: { members: { name: string; running: boolean }[] }[] };
    return status.fleets?.some((f) => f.members.some((m) => m.name === name && m.running === running)) ? true : undefined;
  }, 20);
}

interface Spread {
  p50: number;
  max: number;
  /** From the start command's return instead, p50. */
  fromReturn: number;
}

const spreadOf = (fromEvent: number[], fromReturn: number[]): Spread => ({ p50: median(fromEvent), max: Math.max(...fromEvent), fromReturn: median(fromReturn) });

async function starts(runtime: Runtime, work: string): Promise<string[][]> {
  const tag = containerName('fb-st');
  const member = await createContainer(runtime, { name: `${tag}-0`, labels: { fleet: tag } });
  const events = followStarts(runtime, tag);
  const probe = '/srv/lat/f0.bin'; // the fleet's one retained file
  const made: string[] = [member];
  let agentProc: AgentProcess | undefined;
  try {
    agentProc = await agentFor(work, `starts-${runtime}`, fleetTarget(runtime, tag), { route: 'retain: true' });
    await upload(agentProc, 'lat', 1);
    await landingOf(runtime, member, probe);
    const again = { event: [] as number[], back: [] as number[] };
    for (let i = 0; i < STARTS; i += 1) {
      await inContainer(runtime, member, `rm -f ${probe}`);
      await stopContainer(runtime, member);
      await memberRunning(agentProc, member, false);
      const before = Date.now();
      await startContainer(runtime, member);
      const back = Date.now();
      const landed = await landingOf(runtime, member, probe);
      again.event.push(landed - (await events.of(member, before)));
      again.back.push(landed - back);
    }
    const fresh = { event: [] as number[], back: [] as number[] };
    for (let i = 1; i <= STARTS; i += 1) {
      const before = Date.now();
      made.push(await createContainer(runtime, { name: `${tag}-${i}`, labels: { fleet: tag } }));
      const back = Date.now();
      const landed = await landingOf(runtime, `${tag}-${i}`, probe);
      fresh.event.push(landed - (await events.of(`${tag}-${i}`, before)));
      fresh.back.push(landed - back);
      await removeContainer(runtime, made.pop() as string);
    }
    const row = (what: string, s: Spread) => [runtime, what, fmt(s.p50, 0), fmt(s.max, 0), fmt(s.fromReturn, 0), mark(s.p50 <= 500)];
    return [row('started again', spreadOf(again.event, again.back)), row('new container', spreadOf(fresh.event, fresh.back))];
  } finally {
    await agentProc?.stop();
    await events.stop();
    await Promise.all(made.map((c) => removeContainer(runtime, c)));
  }
}

// ---------------------------------------------------------------------------------

async function versions(): Promise<string> {
  const version = async (runtime: Runtime) => {
    const args = incusLike(runtime) ? ['version'] : ['version', '--format', '{{.Server.Version}}'];
    const out = (await execa(cli(runtime), args, { reject: false })).stdout;
    return `${runtime} ${(/Server version: (.*)/.exec(out)?.[1] ?? out).trim()}`;
  };
  return (await Promise.all(RUNTIMES.map(version))).join(', ');
}

function table(title: string, head: string[], rows: string[][]): void {
  if (rows.length === 0) return;
  console.log(`\n${title}\n${head.join(' | ')}`);
  for (const row of rows) console.log(row.join(' | '));
}

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-fleet-'));
  console.log(`bench/fleet: node ${process.version}; ${await versions()}; load ${loadavg().map((l) => fmt(l, 2)).join(' ')}`);
  const upRows: string[][] = [];
  const mirrorRows: string[][] = [];
  const startRows: string[][] = [];
  try {
    const tree = path.join(work, 'tree');
    if (PARTS.has('recreate')) await makeTree(tree);
    for (const runtime of RUNTIMES) {
      if (PARTS.has('upload')) upRows.push(await uploads(runtime, work));
      if (PARTS.has('recreate')) mirrorRows.push(await recreate(runtime, work, tree));
      if (PARTS.has('starts')) startRows.push(...(await starts(runtime, work)));
    }
  } finally {
    table(`(1) ${FILES} × 4 KiB over HTTP (c=${CONCURRENCY}), ${ROUNDS} alternating rounds, medians`,
      ['runtime', 'fleet of 3: deliveries landed/s', 'one container: landed/s', 'ratio', 'goal ≥ 2×'], upRows);
    table(`(2) re-created member of a ${MIRROR_FILES.toLocaleString('en-US')}-file mirror (${MIRROR_DIRS} dirs × ${MIRROR_SIZE} B), ${MIRROR_ROUNDS} alternating rounds, medians`,
      ['runtime', 'start → identical, s', 'raw tar | exec tar -x, s', 'ratio', 'goal ≤ 1.5×', 'first mirror push into 2 members, s'], mirrorRows);
    table(`(3) start → retained file landed in the member, ms, ${STARTS} starts each (origin: the runtime's start event)`,
      ['runtime', 'kind', 'p50', 'max', 'p50 from the start command\'s return', 'goal p50 ≤ 500 ms'], startRows);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
