// A watched folder's writer attacking the agent: how fast does /healthz answer, and how
// much memory does the agent hold, while the writer (test/hostile/racer.py)
//   (a) renames a directory back and forth flat out (an event storm), and
//   (b) swaps 50 settled files with FIFOs in a loop?
// Against the same agent at rest, in the same run. Goals (issue 10): /healthz within
// 100 ms during the storm, RSS under 300 MB.
//
//   npm run build && node --import tsx bench/hostile-watch.ts     (SECONDS=10)
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, percentile, startAgentProcess, track, type AgentProcess } from './lib.js';

const SECONDS = Number(process.env.SECONDS ?? 10);
const RACER = fileURLToPath(new URL('../test/hostile/racer.py', import.meta.url));

function racer(args: string[], cwd?: string): Promise<number> {
  const child = track(spawn('python3', [RACER, ...args], { cwd, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`racer exited ${code}`)))));
}

// /healthz every 20 ms until `until` settles: latencies (ms), and the agent's RSS peak.
async function probe(agent: AgentProcess, until: Promise<unknown>): Promise<{ ms: number[]; rss: number }> {
  let over = false;
  void until.finally(() => (over = true));
  const ms: number[] = [];
  while (!over) {
    const started = performance.now();
    await fetch(`${agent.url}/healthz`).then((r) => r.arrayBuffer());
    ms.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { ms: ms.sort((a, b) => a - b), rss: await agent.peakRssMb() };
}

const line = (what: string, { ms, rss }: { ms: number[]; rss: number }, extra = '') =>
  console.log(`| ${what} | ${fmt(percentile(ms, 50))} / ${fmt(percentile(ms, 99))} / ${fmt(ms.at(-1) ?? NaN)} ms | ${fmt(rss, 0)} MB | ${extra} |`);

async function fifoPairs(dir: string, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) {
    await writeFile(path.join(dir, `f${i}.txt`), `file ${i}`);
    await new Promise<void>((resolve, reject) => spawn('mkfifo', [path.join(dir, `.f${i}`)]).once('exit', (code) => (code === 0 ? resolve() : reject(new Error('mkfifo')))));
    names.push(`f${i}.txt`, `.f${i}`);
  }
  return names;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'stevedore-bench-hostile-'));
  const drop = path.join(dir, 'in');
  await mkdir(path.join(drop, 'a'), { recursive: true });
  const agent = await startAgentProcess(dir, undefined, {
    extraYaml: `watch: [{ name: in, path: ${drop}, target: box, dest: /srv/in, mode: mirror, settle: 50ms }]`,
  });
  try {
    console.log(`A watched folder's writer against the agent, ${SECONDS} s each (/healthz every 20 ms)\n`);
    console.log('| | /healthz p50 / p99 / max | agent peak RSS | writer |');
    console.log('|---|---|---|---|');
    const rest = new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
    line('at rest', await probe(agent, rest));
    const storm = racer(['flip', String(SECONDS), '0', path.join(drop, 'a'), path.join(drop, 'b')]);
    line('(a) a directory renamed back and forth', await probe(agent, storm), `${fmt((await storm) / SECONDS, 0)} renames/s`);
    const names = await fifoPairs(path.join(drop, 'fifos'), 50);
    const fifos = racer(['blink', String(SECONDS), '2000', ...names], path.join(drop, 'fifos'));
    line('(b) 50 files swapped with FIFOs', await probe(agent, fifos), `${fmt((await fifos) / SECONDS, 0)} swaps/s`);
    console.log('\nGoals: /healthz within 100 ms during (a); RSS under 300 MB.');
  } finally {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
