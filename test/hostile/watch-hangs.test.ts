// A watched folder's writer trying to freeze the agent, against a real `stevedore run`
// process: a settled file swapped with a FIFO in a loop (an open() of a FIFO blocks a
// thread-pool thread until a writer comes; four of them and the agent serves nothing),
// and a directory renamed back and forth flat out (an event storm). Throughout, the
// agent must answer, its memory stay bounded, SIGTERM stop it, and the files land.
import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { finished, useBuiltCli } from '../helpers/cli.js';
import { percentile } from '../../bench/lib.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { probe, race, rssOf, runAgent, type RunningAgent } from './race.js';

const run = promisify(execFile);
const PAST = new Date('2020-01-02T03:04:05Z');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Probes {
  answered: number;
  unanswered: string[];
  ms: number[];
  peakRssMb: number;
}

// Probes /healthz, /readyz and an upload in turn every `everyMs` until `until` settles.
async function probeUntil(agent: RunningAgent, until: Promise<unknown>, everyMs: number): Promise<Probes> {
  let over = false;
  void until.finally(() => (over = true));
  const result: Probes = { answered: 0, unanswered: [], ms: [], peakRssMb: 0 };
  const targets: [string, RequestInit | undefined][] = [
    ['/healthz', undefined],
    ['/readyz', undefined],
    ['/drop/files/probe.txt', { method: 'PUT', body: 'probe' }],
  ];
  for (let i = 0; !over; i += 1) {
    const [where, init] = targets[i % targets.length] as [string, RequestInit | undefined];
    const answer = await probe(`${agent.url}${where}`, init);
    if (answer.ok) result.answered += 1;
    else result.unanswered.push(`${where}: ${answer.error}`);
    result.ms.push(answer.ms);
    result.peakRssMb = Math.max(result.peakRssMb, (await rssOf(agent.child.pid as number)).now);
    await sleep(everyMs);
  }
  return result;
}

// A directory of `count` files with old mtimes (settled at once), each paired with a
// FIFO named as a dotfile (the watch ignores the name, not what is swapped onto it),
// made outside the watched folder, raced there, then moved in: the agent meets every
// file while it is being swapped.
async function raceInto(drop: string, name: string, count: number, seconds: number): Promise<{ files: string[]; racing: Promise<number> }> {
  const dir = path.join(path.dirname(drop), name);
  await mkdir(dir);
  const pairs: [string, string][] = [];
  for (let i = 0; i < count; i += 1) {
    const [file, fifo] = [`${name}${i}.txt`, `.${name}${i}.fifo`];
    await run('mkfifo', [path.join(dir, fifo)]);
    await writeFile(path.join(dir, file), file);
    for (const made of [file, fifo]) await utimes(path.join(dir, made), PAST, PAST);
    pairs.push([file, fifo]);
  }
  const racing = race('blink', pairs, seconds, 2000, dir);
  // Moved in once the racer runs (its first name mostly a FIFO): on a loaded machine
  // python can start later than the agent stages 50 plain files, and nothing is raced.
  const [first] = pairs[0] as [string, string];
  await waitFor(async () => (await lstat(path.join(dir, first)).catch(() => undefined))?.isFIFO(), { timeoutMs: 10_000, what: 'the racer to start' });
  await rename(dir, path.join(drop, name));
  return { files: pairs.map(([file]) => `${name}/${file}`), racing };
}

const summary = (p: Probes) => {
  const sorted = [...p.ms].sort((a, b) => a - b);
  return `${p.answered} probes answered, ${p.unanswered.length} not; p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? NaN).toFixed(1)} ms`;
};

describe('a watched folder whose writer tries to freeze the agent', () => {
  useBuiltCli();

  it('settled files swapped with FIFOs in a loop: the agent never blocks, every file lands, SIGTERM stops it', async () => {
    const dir = await tempDir();
    const drop = path.join(dir, 'in');
    await mkdir(drop);
    const agent = await runAgent(dir, [{ name: 'in', path: drop, dest: '/srv/in', settle: '50ms' }]);
    const { files, racing } = await raceInto(drop, 'a', 50, 10);
    const probes = await probeUntil(agent, racing, 50);
    const swaps = await racing;
    expect(probes.unanswered).toEqual([]);
    // Every file landed with its own bytes (never a FIFO's nothing), and left the folder.
    for (const rel of files) {
      const landed = path.join(agent.box, 'srv/in', rel);
      await waitFor(async () => (await readFile(landed, 'utf8').catch(() => undefined)) === path.basename(rel), { timeoutMs: 15_000, what: `${rel} to land` });
    }
    await waitFor(async () => (await readdir(path.join(drop, 'a'))).every((name) => name.startsWith('.')), { timeoutMs: 15_000, what: 'the drop folder to hold only the FIFOs' });
    const special = agent.logs.filter((l) => l.msg === 'skipping a file that is not a regular file (FIFO, socket or device)');
    expect(special.length).toBeGreaterThan(0); // FIFOs were met, and refused
    // Said once per path at warn level, and again only after the path was staged in between.
    const warned = special.filter((l) => l.level === 40).map((l) => String(l.path));
    const queuedTimes = (file: string) => agent.logs.filter((l) => l.msg === 'task queued' && l.dest === `/srv/in/${path.relative(drop, file)}`).length;
    for (const file of new Set(warned)) expect(warned.filter((w) => w === file).length).toBeLessThanOrEqual(queuedTimes(file) + 1);

    // SIGTERM in the middle of another race: a clean stop within shutdown_grace (2s) + 5s.
    const { racing: again } = await raceInto(drop, 'b', 20, 8);
    await sleep(1000);
    const stopping = performance.now();
    agent.child.kill('SIGTERM');
    const exit = await finished(agent.child, 7000);
    const stopMs = performance.now() - stopping;
    expect(exit.code).toBe(0);
    await again;
    // eslint-disable-next-line no-console -- each race prints what it tried and what happened
    console.log(`FIFO race: 50 files each swapped with a FIFO, ${swaps} swaps in 10s; ${summary(probes)}; FIFOs refused ${special.length}× (${warned.length} warnings); all 50 landed; SIGTERM mid-race: exit 0 in ${stopMs.toFixed(0)} ms`);
  }, 60_000);

  it('a directory renamed back and forth flat out for 10 s: memory stays bounded, the agent answers, its files land', async () => {
    const dir = await tempDir();
    const drop = path.join(dir, 'in');
    const a = path.join(drop, 'a');
    await mkdir(a, { recursive: true });
    const agent = await runAgent(dir, [{ name: 'in', path: drop, dest: '/srv/in', mode: 'mirror', settle: '50ms' }]);
    const before = await rssOf(agent.child.pid as number);
    // Written as the storm starts: found and pushed during it or after it.
    const names = Array.from({ length: 20 }, (_, i) => `f${i}.txt`);
    for (const name of names) await writeFile(path.join(a, name), name);

    const racing = race('flip', [[a, path.join(drop, 'b')]], 10);
    const probes = await probeUntil(agent, racing, 50);
    const renames = await racing;
    const after = await rssOf(agent.child.pid as number);
    expect(probes.unanswered).toEqual([]);
    expect(after.peak).toBeLessThan(300);
    for (const name of names) {
      const landed = path.join(agent.box, 'srv/in/a', name);
      await waitFor(async () => (await readFile(landed, 'utf8').catch(() => undefined)) === name, { timeoutMs: 15_000, what: `a/${name} to land` });
    }
    agent.child.kill('SIGTERM');
    expect((await finished(agent.child, 7000)).code).toBe(0);
    // eslint-disable-next-line no-console -- each race prints what it tried and what happened
    console.log(`rename storm: ${renames} renames in 10s; ${summary(probes)}; RSS ${before.now.toFixed(0)} MB before, peak ${after.peak.toFixed(0)} MB (limit 300)`);
  }, 60_000);
});
