// npm run soak: a steady mixed load (HTTP uploads and drop-folder files) into a real
// Incus container for DURATION seconds (600 by default) at RATE files/s (200: about
// half of what the agent can take here, bench/push). Prints RSS, open fds and spool
// size for the first and the last minute (they must stay flat), the errors (must be 0)
// and the files lost (must be 0, every name checked in the container, a sample by sha256).
// The JS heap and external memory, read from the agent's /metrics, tell a leak in the
// heap from memory the allocator keeps.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { fmt, put, startAgentProcess } from './lib.js';

const DURATION = Number(process.env.DURATION ?? 600) * 1000;
const RATE = Number(process.env.RATE ?? 200);
const DROP_SHARE = 0.25; // a quarter of the files come through the drop folder
const SAMPLE_EVERY = 10_000;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const incus = (...args: string[]) => execa('incus', args, { stdin: 'ignore' });

interface Sample {
  at: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  fds: number;
  spoolFiles: number;
}

const metricMb = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) / 2 ** 20;

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'stevedore-soak-'));
  const container = `sd-soak-${randomBytes(3).toString('hex')}`;
  await incus('launch', '-q', 'local/busybox', container);
  const drop = path.join(work, 'drop');
  await mkdir(drop);
  const agentProc = await startAgentProcess(path.join(work, 'agent'), 'capacity: 20000, concurrency: 4, per_target: 2', {
    target: `{ runtime: incus, container: ${container} }`,
    extraYaml: `watch: [{ name: w, path: ${drop}, target: box, dest: /srv/w, settle: 100ms }]\n`,
  });
  const pid = agentProc.child.pid as number;
  const spool = path.join(work, 'agent/state/spool');
  const client = new Agent({ keepAlive: true, maxSockets: 16 });
  const sent = new Map<string, string>();
  const refused = new Set<string>(); // uploads not answered 202: not promised, so not lost
  const errors = new Map<string, number>(); // why, and how often
  const samples: Sample[] = [];
  const started = performance.now();
  const sample = async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const metrics = await (await fetch(`${agentProc.url}/metrics`)).text();
    samples.push({
      at: (performance.now() - started) / 1000,
      rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024,
      heapUsedMb: metricMb(metrics, 'nodejs_heap_size_used_bytes'),
      heapTotalMb: metricMb(metrics, 'nodejs_heap_size_total_bytes'),
      externalMb: metricMb(metrics, 'nodejs_external_memory_bytes'),
      fds: (await readdir(`/proc/${pid}/fd`)).length,
      spoolFiles: (await readdir(spool)).length,
    });
  };
  const sampler = setInterval(() => void sample(), SAMPLE_EVERY);
  console.log(`soak: ${DURATION / 1000} s at ${RATE} files/s into Incus container ${container}`);
  let n = 0;
  const inFlight = new Set<Promise<void>>();
  while (performance.now() - started < DURATION) {
    const due = Math.floor(((performance.now() - started) / 1000) * RATE);
    while (n < due) {
      const i = n++;
      const data = randomBytes(4096 + (i % 16) * 4096);
      if (i % Math.round(1 / DROP_SHARE) === 0) {
        const name = `d${i}.bin`;
        sent.set(`w/${name}`, sha(data));
        await writeFile(path.join(drop, `${name}.part`), data);
        await rename(path.join(drop, `${name}.part`), path.join(drop, name));
      } else {
        const name = `u${i}.bin`;
        sent.set(`c/${name}`, sha(data));
        const failed = (why: string) => {
          refused.add(`c/${name}`);
          errors.set(why, (errors.get(why) ?? 0) + 1);
        };
        const upload = put(`${agentProc.url}/drop/c/${name}`, data, data.length, client)
          .then((status) => void (status === 202 || failed(`HTTP ${status}`)), (error: NodeJS.ErrnoException) => failed(error.code ?? error.message))
          .finally(() => inFlight.delete(upload));
        inFlight.add(upload);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(inFlight);
  clearInterval(sampler);
  // Everything must land: wait for the drop folder and the spool to empty.
  while ((await readdir(drop)).length > 0 || (await readdir(spool)).length > 0) await new Promise((resolve) => setTimeout(resolve, 500));
  const listed = async (dir: string) => (await incus('exec', container, '--', 'sh', '-c', `ls ${dir} 2>/dev/null; true`)).stdout.split('\n').filter(Boolean);
  const landed = new Set([...(await listed('/srv/c')).map((f) => `c/${f}`), ...(await listed('/srv/w')).map((f) => `w/${f}`)]);
  const lost = [...sent.keys()].filter((name) => !refused.has(name) && !landed.has(name));
  const names = [...sent.keys()].filter((name) => !refused.has(name));
  const picked = Array.from({ length: Math.min(200, names.length) }, () => names[Math.floor(Math.random() * names.length)] as string);
  const sums = (await incus('exec', container, '--', 'sha256sum', ...picked.map((name) => `/srv/${name}`))).stdout.split('\n');
  const badSums = sums.filter((line) => { const [hash, file] = line.split(/\s+/); return sent.get((file ?? '').slice('/srv/'.length)) !== hash; });
  const minute = (from: number, to: number) => samples.filter((s) => s.at >= from && s.at < to);
  const avg = (list: Sample[], key: keyof Sample) => list.reduce((sum, s) => sum + s[key], 0) / Math.max(1, list.length);
  const first = minute(0, 60);
  const last = minute(DURATION / 1000 - 60, Infinity);
  const errorCount = [...errors.values()].reduce((sum, count) => sum + count, 0);
  console.log(`files sent: ${sent.size} (${fmt(sent.size / (DURATION / 1000))}/s); errors: ${errorCount} ${JSON.stringify(Object.fromEntries(errors))}; lost: ${lost.length}; sha256 sample: ${picked.length} checked, ${badSums.length} wrong`);
  console.log('                  first minute | last minute');
  console.log(`RSS (MB)          ${fmt(avg(first, 'rssMb')).padStart(12)} | ${fmt(avg(last, 'rssMb'))}`);
  console.log(`JS heap used (MB) ${fmt(avg(first, 'heapUsedMb')).padStart(12)} | ${fmt(avg(last, 'heapUsedMb'))}`);
  console.log(`JS heap total (MB)${fmt(avg(first, 'heapTotalMb')).padStart(12)} | ${fmt(avg(last, 'heapTotalMb'))}`);
  console.log(`external (MB)     ${fmt(avg(first, 'externalMb')).padStart(12)} | ${fmt(avg(last, 'externalMb'))}`);
  console.log(`open fds          ${fmt(avg(first, 'fds')).padStart(12)} | ${fmt(avg(last, 'fds'))}`);
  const minutes = Array.from({ length: Math.ceil(DURATION / 60_000) }, (_, m) => minute(m * 60, (m + 1) * 60));
  console.log(`by minute, RSS / heap used (MB): ${minutes.map((list) => `${fmt(avg(list, 'rssMb'))}/${fmt(avg(list, 'heapUsedMb'))}`).join('  ')}`);
  console.log(`spool files       ${fmt(avg(first, 'spoolFiles')).padStart(12)} | ${fmt(avg(last, 'spoolFiles'))}`);
  client.destroy();
  await agentProc.stop();
  await incus('delete', '-f', container);
  await rm(work, { recursive: true, force: true });
  if (errorCount > 0 || lost.length > 0 || badSums.length > 0) process.exitCode = 1;
}

await main();
