// bench/ingest: (a) 1,000 uploads of 4 KiB at concurrency 16 into a real agent process
// on the local target, beside the disk's fsync floor measured in the same run;
// (b) one 1 GiB upload beside `dd … conv=fdatasync`, with the agent's peak RSS;
// (c) with INCUS=1, the small files again, pushed into a fresh Incus container
// (test/runtimes/setup.sh; run it under runtimes.lock too): the accept latency while
// the pushes run.
// Run with `npm run bench` (builds first). Knobs: FILES (0: only (b)), CONCURRENCY, BIG_MIB, INCUS;
// STRACE=1 counts the small-file agent's system calls per upload (`strace -f -c`, which
// slows it: its figures are then not the bench's); BENCH_NODE_ARGS="--cpu-prof" profiles
// the agents.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { ddRate, fmt, fsyncFloor, percentile, put, startAgentProcess, type AgentProcess } from './lib.js';

const FILES = Number(process.env.FILES ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const BIG_MIB = Number(process.env.BIG_MIB ?? 1024);
const STRACE = process.env.STRACE === '1';
const INCUS = process.env.INCUS === '1';

async function countLanded(dir: string): Promise<number> {
  return (await readdir(dir).catch(() => [])).length;
}

// `strace -f -c` attached to the agent (every thread); stop() prints its table per upload.
async function traceCalls(pid: number, out: string): Promise<{ stop(): Promise<void> }> {
  const strace = spawn('strace', ['-f', '-c', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 1000)); // attached to every thread by then
  return {
    async stop() {
      strace.kill('SIGINT');
      await new Promise((resolve) => strace.once('exit', resolve));
      console.log(`\nstrace -f -c of the agent, per upload (${FILES} uploads, until all landed):`);
      for (const line of (await readFile(out, 'utf8')).split('\n')) {
        const cols = line.trim().split(/\s+/);
        const calls = Number(cols[3]);
        if (cols.length < 5 || !Number.isFinite(calls) || cols[cols.length - 1] === 'total') continue;
        const errors = cols.length === 6 ? Number(cols[4]) : 0;
        console.log(`  ${(cols[cols.length - 1] as string).padEnd(14)} ${fmt(calls / FILES, 2).padStart(7)}${errors ? `  (${fmt(errors / FILES, 2)} failing)` : ''}   ${cols[0]}% of syscall time`);
      }
    },
  };
}

// FILES uploads of 4 KiB at CONCURRENCY; resolves once `landed()` counts them all.
async function uploadAll(agentProc: AgentProcess, landed: () => Promise<number>) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const data = randomBytes(4096);
  const latencies: number[] = [];
  let next = 0;
  const cpuBefore = await agentProc.cpuSeconds();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < FILES) {
        const i = next++;
        const t0 = performance.now();
        const status = await put(`${agentProc.url}/drop/f${i}.bin`, data, data.length, agent);
        latencies.push(performance.now() - t0);
        if (status !== 202) throw new Error(`upload ${i} answered ${status}`);
      }
    }),
  );
  const accepted = performance.now() - started;
  while ((await landed()) < FILES) await new Promise((resolve) => setTimeout(resolve, 5));
  const landedMs = performance.now() - started;
  const cpuUs = (((await agentProc.cpuSeconds()) - cpuBefore) * 1e6) / FILES;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { acceptRate: FILES / (accepted / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), landedRate: FILES / (landedMs / 1000), cpuUs };
}

async function smallFiles(work: string) {
  const floor = await fsyncFloor(path.join(work, 'floor'), FILES, 4096, CONCURRENCY);
  const agentProc = await startAgentProcess(path.join(work, 'small'));
  const tracing = STRACE ? await traceCalls(agentProc.child.pid as number, path.join(work, 'strace.txt')) : undefined;
  const figures = await uploadAll(agentProc, () => countLanded(path.join(agentProc.root, 'srv')));
  await tracing?.stop();
  const rss = await agentProc.peakRssMb();
  await agentProc.stop();
  return { floor, ...figures, rss };
}

// The same uploads into a fresh Incus container (local/busybox, test/runtimes/setup.sh):
// how long a 202 takes while the agent's pushes into it run.
async function intoIncus(work: string) {
  const container = `sd-bench-ingest-${randomBytes(3).toString('hex')}`;
  const incus = (...args: string[]) => execa('incus', args, { stdin: 'ignore' });
  await incus('launch', '-q', 'local/busybox', container);
  try {
    const agentProc = await startAgentProcess(path.join(work, 'incus'), undefined, { target: `{ runtime: incus, container: ${container} }` });
    try {
      return await uploadAll(agentProc, async () => Number((await incus('exec', container, '--', 'sh', '-c', 'ls /srv 2>/dev/null | wc -l')).stdout));
    } finally {
      await agentProc.stop();
    }
  } finally {
    await execa('incus', ['delete', '-f', container], { reject: false });
  }
}

async function bigFile(work: string) {
  const dd = await ddRate(path.join(work, 'dd.bin'), BIG_MIB);
  const agentProc = await startAgentProcess(path.join(work, 'big'));
  const restRss = await agentProc.peakRssMb();
  const chunk = randomBytes(2 ** 20);
  const body = Readable.from((function* () {
    for (let i = 0; i < BIG_MIB; i += 1) yield chunk;
  })());
  const started = performance.now();
  const status = await put(`${agentProc.url}/drop/big.bin`, body, BIG_MIB * 2 ** 20);
  const accepted = (performance.now() - started) / 1000;
  if (status !== 202) throw new Error(`the big upload answered ${status}`);
  const landedFile = path.join(agentProc.root, 'srv/big.bin');
  while (!(await stat(landedFile).then((s) => s.size === BIG_MIB * 2 ** 20, () => false))) await new Promise((r) => setTimeout(r, 20));
  const landed = (performance.now() - started) / 1000;
  const rss = await agentProc.peakRssMb();
  await agentProc.stop();
  const mb = (BIG_MIB * 2 ** 20) / 1e6;
  return { dd, rate: mb / accepted, landedRate: mb / landed, restRss, rss };
}

const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-'));
try {
  const small = FILES > 0 ? await smallFiles(work) : undefined;
  const big = await bigFile(work);
  const incus = INCUS ? await intoIncus(work) : undefined;
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  console.log(`\nbench/ingest — ${FILES} × 4 KiB at concurrency ${CONCURRENCY}; one ${BIG_MIB} MiB upload (Node ${process.version})`);
  if (small) {
    console.log(`  fsync floor (${CONCURRENCY} writers: create, write 4 KiB, fsync, close)  ${fmt(small.floor, 0)} files/s`);
    console.log(`  accepted (202)                      ${fmt(small.acceptRate, 0)} req/s`);
    console.log(`  accept latency p50 / p99            ${fmt(small.p50, 2)} / ${fmt(small.p99, 2)} ms   goal p99 ≤ 25 ms: ${mark(small.p99 <= 25)}`);
    console.log(`  end to end (all landed)             ${fmt(small.landedRate, 0)} files/s = ${fmt(small.landedRate / small.floor, 2)}× floor   goal ≥ 1.0×: ${mark(small.landedRate >= small.floor)}`);
    console.log(`  agent CPU per upload (user + sys)   ${fmt(small.cpuUs, 0)} µs, all threads`);
    console.log(`  agent peak RSS (small files)        ${fmt(small.rss, 0)} MB`);
  }
  console.log(`  dd bs=1M conv=fdatasync             ${fmt(big.dd, 0)} MB/s`);
  console.log(`  1 GiB upload, until 202             ${fmt(big.rate, 0)} MB/s = ${fmt(big.rate / big.dd, 2)}× dd   goal ≥ 0.8×: ${mark(big.rate >= 0.8 * big.dd)}`);
  console.log(`  1 GiB upload, until landed          ${fmt(big.landedRate, 0)} MB/s`);
  console.log(`  agent RSS at rest, then peak (1 GiB) ${fmt(big.restRss, 0)}, ${fmt(big.rss, 0)} MB   goal ≤ 100 MB: ${mark(big.rss <= 100)}`);
  if (incus) {
    console.log(`  into Incus: accepted (202)          ${fmt(incus.acceptRate, 0)} req/s`);
    console.log(`  into Incus: accept p50 / p99        ${fmt(incus.p50, 2)} / ${fmt(incus.p99, 2)} ms   goal p99 ≤ 25 ms: ${mark(incus.p99 <= 25)}`);
    console.log(`  into Incus: end to end              ${fmt(incus.landedRate, 0)} files/s; agent CPU per upload ${fmt(incus.cpuUs, 0)} µs`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
