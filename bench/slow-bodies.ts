// bench/slow-bodies (issue 10, item 8): N anonymous PUTs trickle their bodies (one byte
// every TRICKLE_MS) into a real agent process with a small queue. Meanwhile: does an
// authenticated upload still get 202, does a file dropped in a watched folder still
// land promptly, what do /readyz and /status say, and when are the trickles cut?
// Run with `npm run bench:slow` (builds first). Knobs: SLOW (20),
// TRICKLE_MS (3000), CAPACITY (20), WATCH_FOR_MS (40000), HTTP_YAML (more http keys).
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fmt, startAgentProcess, type AgentProcess } from './lib.js';

const SLOW = Number(process.env.SLOW ?? 20);
const TRICKLE_MS = Number(process.env.TRICKLE_MS ?? 3000);
const CAPACITY = Number(process.env.CAPACITY ?? 20);
const WATCH_FOR_MS = Number(process.env.WATCH_FOR_MS ?? 40_000);
const TOKEN = 'bench-token';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Trickle {
  socket: Socket;
  /** The first line the agent answered, if any ("HTTP/1.1 408 …"). */
  answer?: string;
  closedAt?: number;
}

/** An anonymous PUT declaring 1 MiB that sends one byte every TRICKLE_MS. */
function trickle(url: string, i: number): Trickle {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  const entry: Trickle = { socket };
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => (entry.answer ??= chunk.toString('latin1').split('\r\n')[0]));
  socket.once('close', () => (entry.closedAt = performance.now()));
  socket.once('connect', () => {
    socket.write(`PUT /drop/slow/${i}.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${2 ** 20}\r\n\r\n`);
    const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write('x')), TRICKLE_MS);
    socket.once('close', () => clearInterval(timer));
  });
  return entry;
}

/** An authenticated upload (a legacy rule with a token); resolves with its status and time. */
function authenticated(url: string, name: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const body = Buffer.alloc(4096, 1);
  const headers = { authorization: `Bearer ${TOKEN}`, 'x-container-name': 'box', 'x-file-path': `/srv/auth/${name}`, 'content-length': body.length };
  return new Promise((resolve, reject) => {
    const req = request(`${url}/upload`, { method: 'POST', headers }, (res) => res.resume().once('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started })));
    req.once('error', reject);
    req.end(body);
  });
}

/** Drops a file into the watched folder; resolves with the ms until it landed (NaN if not within WATCH_FOR_MS). */
async function dropLands(agent: AgentProcess, dropDir: string, name: string): Promise<number> {
  const started = performance.now();
  await writeFile(path.join(dropDir, name), 'dropped');
  const landed = path.join(agent.root, 'srv/dropped', name);
  while (performance.now() - started < WATCH_FOR_MS) {
    if (await readFile(landed, 'utf8').then((text) => text === 'dropped', () => false)) return performance.now() - started;
    await sleep(20);
  }
  return NaN;
}

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-slow-'));
  const dropDir = path.join(work, 'drop');
  await mkdir(dropDir, { recursive: true });
  const extraYaml = `watch: [{ name: drop, path: ${dropDir}, target: box, dest: /srv/dropped, settle: 100ms }]`;
  const httpYaml = [`  legacy: [{ target: box, path_prefix: /srv/auth, token: ${TOKEN} }]`, process.env.HTTP_YAML ?? ''].join('\n');
  const agent = await startAgentProcess(path.join(work, 'agent'), `capacity: ${CAPACITY}, concurrency: 4, per_target: 2`, { extraYaml, httpYaml });
  try {
    console.log(`${SLOW} anonymous PUTs trickling 1 byte every ${TRICKLE_MS} ms; queue.capacity ${CAPACITY}${process.env.HTTP_YAML ? `; ${process.env.HTTP_YAML.trim()}` : ''}`);
    const before = await authenticated(agent.url, 'before.bin');
    await sleep(500); // its push ends and gives its queue slot back
    const started = performance.now();
    const slow = Array.from({ length: SLOW }, (_, i) => trickle(agent.url, i));
    await sleep(1000);
    const auth = await authenticated(agent.url, 'during.bin');
    const ready = await getJson(`${agent.url}/readyz`);
    const status = await getJson(`${agent.url}/status`);
    const dropMs = await dropLands(agent, dropDir, 'during.txt');
    console.log(`authenticated upload: before ${before.status}; during ${auth.status} in ${fmt(auth.ms, 0)} ms`);
    console.log(`drop file landed ${fmt(dropMs, 0)} ms after it was written`);
    console.log(`/readyz ${ready.status} ${JSON.stringify(ready.body)}`);
    console.log(`/status queue ${JSON.stringify(status.body.queue)} receiving ${JSON.stringify(status.body.receiving ?? 'n/a')}`);
    while (performance.now() - started < WATCH_FOR_MS && slow.some((s) => s.closedAt === undefined)) await sleep(100);
    // Per outcome: how many, and when (seconds after the trickles started) they were closed.
    const outcomes = new Map<string, number[]>();
    for (const s of slow) {
      const outcome = s.answer ?? (s.closedAt === undefined ? 'still open' : 'closed, no answer');
      outcomes.set(outcome, [...(outcomes.get(outcome) ?? []), ((s.closedAt ?? NaN) - started) / 1000]);
    }
    const when = (times: number[]) => (Number.isNaN(times[0]) ? '' : ` closed ${fmt(Math.min(...times))}–${fmt(Math.max(...times))} s after the start`);
    console.log(`the ${SLOW} trickles after ${WATCH_FOR_MS / 1000} s: ${[...outcomes].map(([outcome, times]) => `${times.length} × ${outcome}${when(times)}`).join('; ')}`);
    for (const s of slow) s.socket.destroy();
  } finally {
    await agent.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
