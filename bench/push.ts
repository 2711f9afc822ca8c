// bench/push, in one run on this machine, into real containers (test/runtimes/setup.sh):
// (a) 1,000 × 4 KiB uploaded over HTTP to an agent process until all have landed in
//     the container, beside the original design: one `incus file push` (or `lxc file
//     push`, `docker cp`, `podman cp`) per file with 4 workers;
// (b) the push stage alone, 1,000 files already staged, beside one raw
//     `tar -c | <runtime> exec … tar -x` of the same files (the floor);
// (c) one 1 GiB file into each runtime beside its own copy of the same file: `incus file
//     push` (`lxc file push`), `docker cp`, `podman cp`.
// The machine is shared and its speed moves between seconds: each figure and its
// reference are measured in alternating rounds, and medians are printed.
// Run with `npm run bench:push` (builds first). Knobs: FILES, BIG_MIB, RUNTIMES, ROUNDS,
// BASELINE=0, PARTS (default abc; `c` alone for the big file), BIG_ROUNDS (3).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { createTarget } from '../src/targets/index.js';
import type { PutItem, Target } from '../src/targets/target.js';
import { alternate, cli, createContainer, inContainer, incusLike, landedIn, median, rawTar, removeContainer, runtimesFromEnv, seconds, type Runtime } from './containers.js';
import { cpuOf, fmt, machineCpu, put, startAgentProcess } from './lib.js';

const FILES = Number(process.env.FILES ?? 1000);
const BIG_MIB = Number(process.env.BIG_MIB ?? 1024);
const RUNTIMES = runtimesFromEnv();
const BASELINE = process.env.BASELINE !== '0';
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const PARTS = process.env.PARTS ?? 'abc';
const BIG_ROUNDS = Number(process.env.BIG_ROUNDS ?? 3);
const CONCURRENCY = 16;

async function countIn(runtime: Runtime, container: string, dir: string): Promise<number> {
  return Number(await inContainer(runtime, container, `ls ${dir} 2>/dev/null | wc -l`));
}

// The runtime's daemon, whose CPU (a) counts apart; Podman has none.
const DAEMONS: Partial<Record<Runtime, string>> = { incus: 'incusd', lxd: 'lxd', docker: 'dockerd' };

/** Where (a)'s CPU went, in seconds, summed over its rounds; `batches` the agent's pushes. */
interface CpuSplit { agent: number; cli: number; daemon: number; client: number; machine: number; available: number; batches: number }

async function daemonPid(runtime: Runtime): Promise<number | undefined> {
  const name = DAEMONS[runtime];
  if (name === undefined) return undefined;
  const { stdout } = await execa('pgrep', ['-o', '-x', name], { reject: false });
  return stdout ? Number(stdout) : undefined;
}

/** (a) HTTP upload to landed, through a real agent process. */
async function overHttp(runtime: Runtime, container: string, work: string, round: number, split: CpuSplit): Promise<number> {
  await inContainer(runtime, container, 'rm -rf /srv/http');
  const agentProc = await startAgentProcess(path.join(work, `http-${runtime}-${round}`), 'capacity: 5000, concurrency: 4, per_target: 2', {
    target: `{ runtime: ${runtime}, container: ${container} }`,
  });
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const data = randomBytes(4096);
  const landed = await landedIn(runtime, container, '/srv/http', FILES);
  const daemon = await daemonPid(runtime);
  const cpu = async () => ({ agent: await cpuOf(agentProc.child.pid as number), daemon: daemon === undefined ? 0 : (await cpuOf(daemon)).self, client: process.cpuUsage(), machine: await machineCpu() });
  const before = await cpu();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < FILES) {
      const i = next++;
      const status = await put(`${agentProc.url}/drop/http/f${i}.bin`, data, data.length, agent);
      if (status !== 202) throw new Error(`upload ${i} answered ${status}`);
    }
  }));
  await landed();
  const rate = FILES / seconds(started);
  const after = await cpu();
  const metrics = await (await fetch(`${agentProc.url}/metrics`)).text();
  split.batches += Number(/^stevedore_push_duration_seconds_count\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? NaN);
  split.agent += after.agent.self - before.agent.self;
  split.cli += after.agent.children - before.agent.children;
  split.daemon += after.daemon - before.daemon;
  const client = process.cpuUsage(before.client);
  split.client += (client.user + client.system) / 1e6;
  split.machine += after.machine.busy - before.machine.busy;
  split.available += after.machine.all - before.machine.all;
  agent.destroy();
  await agentProc.stop();
  return rate;
}

/** (a) The original design: one CLI push per file, 4 workers. */
async function perFile(runtime: Runtime, container: string, files: string[]): Promise<number> {
  await inContainer(runtime, container, 'mkdir -p /srv/base');
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < files.length) {
      const file = files[next++] as string;
      const dest = `/srv/base/${path.basename(file)}`;
      await execa(cli(runtime), copyArgs(runtime, file, container, dest), { stdin: 'ignore' });
    }
  }));
  return files.length / seconds(started);
}

/** (b) The push stage: staged files straight into the adapter, as the scheduler would batch them (2 × 500 at once). */
async function pushStage(runtime: Runtime, container: string, target: Target, items: PutItem[]): Promise<number> {
  await inContainer(runtime, container, 'rm -rf /srv/stage');
  const half = Math.ceil(items.length / 2);
  const started = performance.now();
  const results = await Promise.all([items.slice(0, half), items.slice(half)].map((batch) => target.push(batch, AbortSignal.timeout(600_000))));
  const failed = results.flat().filter((r) => !r.ok);
  if (failed.length > 0) throw new Error(`${failed.length} pushes failed: ${JSON.stringify(failed[0])}`);
  return items.length / seconds(started);
}

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-push-'));
  const source = path.join(work, 'files');
  await mkdir(source);
  const files = await Promise.all(Array.from({ length: FILES }, async (_, i) => {
    const file = path.join(source, `f${i}.bin`);
    await writeFile(file, randomBytes(4096));
    return file;
  }));
  console.log(`bench/push: ${FILES} × 4 KiB; node ${process.version}`);
  const rows: string[][] = [];
  const splits: string[] = [];
  for (const runtime of PARTS.includes('a') || PARTS.includes('b') ? RUNTIMES : []) {
    const container = await createContainer(runtime);
    try {
      // The per-file baseline takes 20–60 s: run once, between the first two HTTP rounds.
      const httpRates: number[] = [];
      const split: CpuSplit = { agent: 0, cli: 0, daemon: 0, client: 0, machine: 0, available: 0, batches: 0 };
      let baseline = NaN;
      for (let round = 0; round < 3; round += 1) {
        httpRates.push(await overHttp(runtime, container, work, round, split));
        if (round === 0 && BASELINE) baseline = await perFile(runtime, container, files);
      }
      const http = median(httpRates);
      const target = createTarget('bench', { runtime, container });
      await pushStage(runtime, container, target, files.slice(0, 1).map((file) => item(file, '/srv/stage/warm-up'))); // the one-time probe
      const items = files.map((file) => item(file, `/srv/stage/${path.basename(file)}`));
      const [stage, floor] = await alternate(ROUNDS, async () => {
        const rate = await pushStage(runtime, container, target, items);
        if ((await countIn(runtime, container, '/srv/stage')) !== FILES) throw new Error('the push stage did not land every file');
        return rate;
      }, async () => FILES / (await rawTar(runtime, container, source, '/srv/floor')));
      rows.push([runtime, fmt(http), fmt(baseline), `${fmt(http / baseline)}×`, fmt(stage), fmt(floor), `${fmt(stage / floor, 2)}×`]);
      splits.push(`${runtime}: ${cpuLine(split)}`);
    } finally {
      await removeContainer(runtime, container);
    }
  }
  if (rows.length > 0) {
    console.log('\n(a) HTTP → landed, files/s | one CLI push per file, 4 workers | ratio | (b) push stage, files/s | raw tar|exec tar floor | ratio');
    for (const row of rows) console.log(row.join(' | '));
    console.log('\n(a) CPU per file landed, µs, all rounds: the agent | its CLI calls | the runtime daemon | the load client (this process) | the rest (the container\'s tar, the kernel\'s threads, other work) | the machine busy, of what it had');
    for (const line of splits) console.log(line);
  }
  if (PARTS.includes('c') && BIG_MIB > 0) {
    const file = path.join(work, 'big.bin');
    await execa('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${BIG_MIB}`], { stdin: 'ignore' });
    for (const runtime of RUNTIMES) await bigFile(runtime, file);
  }
  await rm(work, { recursive: true, force: true });
}

function cpuLine(split: CpuSplit): string {
  const files = 3 * FILES;
  const us = (seconds: number) => fmt((seconds * 1e6) / files, 0);
  const rest = split.machine - split.agent - split.cli - split.daemon - split.client;
  return `${us(split.agent)} | ${us(split.cli)} in ${split.batches} batches | ${us(split.daemon)} | ${us(split.client)} | ${us(rest)} | ${us(split.machine)} of ${us(split.available)}`;
}

// The runtime's own copy of one host file, as a user would type it.
const copyArgs = (runtime: Runtime, file: string, container: string, dest: string) =>
  incusLike(runtime) ? ['file', 'push', '-q', file, `${container}${dest}`] : ['cp', file, `${container}:${dest}`];

/** (c) One big file: the adapter against the runtime's own copy (`file push`, `cp`). */
async function bigFile(runtime: Runtime, file: string) {
  const bytes = (await stat(file)).size;
  const container = await createContainer(runtime);
  try {
    const target = createTarget('bench', { runtime, container });
    const big = { ...item(file, '/srv/big/stevedore.bin'), bytes };
    const [ours, theirs] = await alternate(BIG_ROUNDS, async () => {
      await inContainer(runtime, container, 'rm -rf /srv/big');
      await execa('sync'); // the previous round's writeback would slow this one
      const started = performance.now();
      const [result] = await target.push([big], AbortSignal.timeout(600_000));
      if (!result?.ok) throw new Error(`the big push failed: ${JSON.stringify(result)}`);
      return bytes / 1e6 / seconds(started);
    }, async () => {
      await inContainer(runtime, container, 'rm -rf /srv/big && mkdir -p /srv/big');
      await execa('sync');
      const started = performance.now();
      await execa(cli(runtime), copyArgs(runtime, file, container, '/srv/big/copy.bin'), { stdin: 'ignore' });
      return bytes / 1e6 / seconds(started);
    });
    const theirName = `${cli(runtime)} ${incusLike(runtime) ? 'file push' : 'cp'}`;
    console.log(`\n(c) ${BIG_MIB} MiB into ${runtime}: stevedore ${fmt(ours)} MB/s | ${theirName} ${fmt(theirs)} MB/s | ${fmt(ours / theirs, 2)}×`);
  } finally {
    await removeContainer(runtime, container);
  }
}

const item = (file: string, dest: string): PutItem => ({ op: 'put', id: dest, source: file, dest, bytes: 4096, mode: 0o644, dirMode: 0o755 });

await main();
