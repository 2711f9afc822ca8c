// bench/resumable (issue 14): a 1 GiB file into a real agent process, through tus in
// 8 MiB PATCHes (tus-js-client, as a user's client would send it) and as one raw PUT,
// in the same run, alternated, each into an agent process of its own (its peak RSS);
// then a tus transfer cut at 90% and resumed: the bytes the client sent twice, against
// one PATCH. Both clients send the file from memory, so that the figures are the
// agent's; a last line shows tus-js-client reading the file from disk itself.
// Run with `npm run bench:resumable` (builds first). Knobs: SIZE_MIB (1024), ROUNDS (2).
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { exec as execCallback } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { cuttingProxy } from '../test/helpers/proxy.js';
import { fmt, put, startAgentProcess, type AgentProcess } from './lib.js';

const SIZE = Number(process.env.SIZE_MIB ?? 1024) * 2 ** 20;
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const CHUNK = 8 * 2 ** 20;

const exec = promisify(execCallback);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

async function makeFile(file: string): Promise<void> {
  const block = randomBytes(64 * 2 ** 20);
  const handle = await open(file, 'w');
  for (let written = 0; written < SIZE; written += block.length) await handle.write(block, 0, Math.min(block.length, SIZE - written));
  await handle.close();
}

// Waits until the agent has pushed everything (its spool empty): one phase's pushes
// must not run beside the next phase's upload.
async function drained(agent: AgentProcess): Promise<void> {
  for (;;) {
    const status = (await (await fetch(`${agent.url}/status`)).json()) as { queue: { depth: number } };
    if (status.queue.depth === 0) return;
    await sleep(100);
  }
}

function tusSend(endpoint: string, source: Buffer | string, name: string, retryDelays: number[] | null = null): Promise<void> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(typeof source === 'string' ? createReadStream(source) : source, {
      endpoint,
      chunkSize: CHUNK,
      retryDelays,
      metadata: { filename: name },
      onError: reject,
      onSuccess: () => resolve(),
    });
    upload.start();
  });
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

// Each phase in an agent process of its own, for a peak RSS of its own, and on a disk
// with nothing left to write back from the phase before (sync).
async function phase(dir: string, run: (agent: AgentProcess) => Promise<unknown>): Promise<{ mbps: number; rssMb: number }> {
  await exec('sync');
  const agent = await startAgentProcess(dir, 'capacity: 100, concurrency: 2, per_target: 1');
  try {
    const ms = await timed(() => run(agent));
    await drained(agent);
    return { mbps: mbps(SIZE, ms), rssMb: await agent.peakRssMb() };
  } finally {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-resumable-'));
  const source = path.join(work, 'source.bin');
  await makeFile(source);
  const data = await readFile(source);
  const dir = path.join(work, 'agent');
  try {
    const raw: { mbps: number; rssMb: number }[] = [];
    const viaTus: { mbps: number; rssMb: number }[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      raw.push(await phase(dir, (agent) => put(`${agent.url}/drop/raw.bin`, data, SIZE)));
      viaTus.push(await phase(dir, (agent) => tusSend(`${agent.url}/drop`, data, 'tus.bin')));
    }
    const fromDisk = await phase(dir, (agent) => tusSend(`${agent.url}/drop`, source, 'disk.bin'));
    const best = (list: { mbps: number }[]) => Math.max(...list.map((r) => r.mbps));
    const peak = (list: { rssMb: number }[]) => Math.max(...list.map((r) => r.rssMb));
    console.log(`${fmt(SIZE / 2 ** 30, 2)} GiB, ${ROUNDS} rounds (raw PUT, then tus in ${CHUNK / 2 ** 20} MiB PATCHes), best of each:`);
    console.log(`  raw PUT:  ${fmt(best(raw))} MB/s   (rounds: ${raw.map((r) => fmt(r.mbps)).join(', ')}), agent peak RSS ${fmt(peak(raw))} MB`);
    console.log(`  tus:      ${fmt(best(viaTus))} MB/s   (rounds: ${viaTus.map((r) => fmt(r.mbps)).join(', ')}), agent peak RSS ${fmt(peak(viaTus))} MB`);
    console.log(`  tus / raw PUT: ${fmt(best(viaTus) / best(raw), 2)}×   (goal ≥ 0.80×; peak RSS goal ≤ 100 MB)`);
    console.log(`  tus-js-client reading the file from disk (a slice stream per PATCH): ${fmt(fromDisk.mbps)} MB/s = ${fmt(fromDisk.mbps / best(raw), 2)}× (client-bound)`);

    // Cut at 90%: what the client sends again once it resumes from the agent's offset.
    await cutAtNinety(dir, data);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function cutAtNinety(dir: string, data: Buffer): Promise<void> {
  const agent = await startAgentProcess(dir, 'capacity: 100, concurrency: 2, per_target: 1');
  try {
    const proxy = await cuttingProxy(agent.url);
    proxy.cutAt(Math.floor(SIZE * 0.9));
    await tusSend(`${proxy.url}/drop`, data, 'cut.bin', [0, 500, 1000]);
    await proxy.cut;
    const headers = 8 * 1024; // generous: each request's head is under 500 bytes
    const resent = Math.max(0, proxy.sent - SIZE - headers);
    await proxy.close();
    console.log(`  cut at 90%: the client sent ${fmt(proxy.sent / 2 ** 20)} MiB for ${fmt(SIZE / 2 ** 20)} MiB: ${fmt(resent / 2 ** 20, 2)} MiB again = ${fmt(resent / CHUNK, 2)}× one PATCH (goal ≤ 1×)`);
    await drained(agent);
    const landed = await stat(path.join(agent.root, 'srv/cut.bin')).then((s) => s.size, () => -1);
    console.log(`  cut.bin landed with ${landed === SIZE ? 'all' : `only ${landed} of`} its ${SIZE} bytes`);
  } finally {
    await agent.stop();
  }
}

await main();
