// Shared pieces of the benchmarks: a real agent process, the disk's own limits
// measured in the same run, and small statistics.
import { spawn, type ChildProcess } from 'node:child_process';
import { request, type Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

// USER_HZ: what /proc counts CPU time in (100 on every Linux this runs on).
const CLOCK_TICKS = 100;

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
export const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface AgentProcess {
  url: string;
  child: ChildProcess;
  root: string;
  /** performance.now() when the process was spawned. */
  spawnedAt: number;
  /** Peak resident set size so far, in MB (VmHWM). */
  peakRssMb(): Promise<number>;
  /** CPU time the process used so far, user + system, every thread, in seconds. */
  cpuSeconds(): Promise<number>;
  /** CPU time of its children that ended (the runtime CLI calls), in seconds. */
  childCpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export interface AgentOptions {
  /** Top-level YAML appended to the config, e.g. a `watch:` block. */
  extraYaml?: string;
  /** Log level; `warn` unless given. */
  logLevel?: string;
  /** Each line the agent writes to stdout (JSON logs). Without it, stdout is inherited. */
  onLog?: (line: string) => void;
  /** The `box` target as YAML flow (a container); a local target under `dir` without it. */
  target?: string;
  /** More keys of the `bench` route, as YAML flow (e.g. `retain: true`). */
  route?: string;
  /** More keys of the `http` block, each line indented by two spaces (e.g. `  legacy: […]`). */
  httpYaml?: string;
}

// Every agent (or peer) process a benchmark starts: killed if the benchmark exits
// without stopping it (an error, Ctrl-C).
const live = new Set<ChildProcess>();
const groups = new WeakSet<ChildProcess>();
process.once('exit', () => live.forEach((child) => signal(child, 'SIGKILL')));

// A child spawned with `detached: true` leads its own process group: the signal goes
// to the whole group (a peer's own helpers, like lsyncd's rsync, with it).
function signal(child: ChildProcess, name: NodeJS.Signals): void {
  try {
    if (groups.has(child) && child.pid !== undefined) process.kill(-child.pid, name);
    else child.kill(name);
  } catch {
    // gone already
  }
}

/** Registers a child process to be killed when the benchmark exits; `group` for one spawned detached. */
export function track(child: ChildProcess, { group = false } = {}): ChildProcess {
  live.add(child);
  if (group) groups.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Stops a child with SIGTERM (SIGKILL after `graceMs`) and waits for its exit. */
export async function stopChild(child: ChildProcess, graceMs = 60_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  signal(child, 'SIGTERM');
  const timer = setTimeout(() => signal(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Starts `node dist/cli.js run` in `dir`, on a local target unless `options.target` names a container. */
export async function startAgentProcess(dir: string, queueYaml = 'capacity: 5000, concurrency: 4, per_target: 2', options: AgentOptions = {}): Promise<AgentProcess> {
  const port = await freePort();
  const root = path.join(dir, 'box');
  const config = path.join(dir, 'stevedore.yaml');
  await mkdir(dir, { recursive: true });
  await writeFile(config, `version: 1
state_dir: ${path.join(dir, 'state')}
log: { level: ${options.logLevel ?? 'warn'}, format: json }
targets: { box: ${options.target ?? `{ runtime: local, root: ${root} }`} }
queue: { ${queueYaml} }
http:
  listen: 127.0.0.1:${port}
  min_free: 64MiB
  max_body: 2GiB
  routes: [{ name: bench, path: /drop, target: box, dest: /srv${options.route ? `, ${options.route}` : ''} }]
${options.httpYaml ?? ''}
${options.extraYaml ?? ''}`);
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const spawnedAt = performance.now();
  const child = track(spawn(process.execPath, [...nodeArgs, 'dist/cli.js', 'run', '-c', config], { stdio: ['ignore', options.onLog ? 'pipe' : 'inherit', 'inherit'] }));
  const { onLog } = options;
  if (onLog && child.stdout) createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', onLog);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (child.exitCode !== null) throw new Error(`the agent exited with ${child.exitCode} before it listened`);
    if (i > 200) {
      await stopChild(child, 1000);
      throw new Error('the agent did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    url,
    child,
    root,
    spawnedAt,
    async peakRssMb() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
    },
    cpuSeconds: async () => (await cpuOf(child.pid as number)).self,
    childCpuSeconds: async () => (await cpuOf(child.pid as number)).children,
    stop: () => stopChild(child),
  };
}

/**
 * CPU time of process `pid` in seconds: its own (user + system, every thread) and its
 * children's that ended and were waited for: fields 14–17 of /proc/PID/stat, counted
 * after the command's closing parenthesis.
 */
export async function cpuOf(pid: number): Promise<{ self: number; children: number }> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ').map(Number);
  const at = (i: number) => fields[i] ?? NaN;
  return { self: (at(11) + at(12)) / CLOCK_TICKS, children: (at(13) + at(14)) / CLOCK_TICKS };
}

/**
 * The machine's CPU time so far, in seconds summed over its CPUs: busy, and all it had
 * (busy, idle or waiting on I/O; what the hypervisor stole is in neither).
 */
export async function machineCpu(): Promise<{ busy: number; all: number }> {
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0] = ((await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy: busy / CLOCK_TICKS, all: (busy + idle + iowait) / CLOCK_TICKS };
}

/** The disk's small-file floor: `writers` at once each create, write, fsync and close files in `dir` (left there). */
export async function fsyncFloor(dir: string, files: number, size: number, writers = 16): Promise<number> {
  await mkdir(dir, { recursive: true });
  const data = randomBytes(size);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < files) {
        const handle = await open(path.join(dir, `f${next++}`), 'wx', 0o600);
        await handle.write(data);
        await handle.sync();
        await handle.close();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  // The files stay until the caller removes `dir` at the end of its run: on ext4 without
  // a journal (this machine's disk), every new inode is looked for past the inodes freed
  // in the last seconds (recently_deleted), so removing them here would slow the agent's
  // file creation measured next, in the same directory's block group.
  return files / seconds;
}

/** `dd if=/dev/zero bs=1M count=N conv=fdatasync` → MB/s, timed here. */
export async function ddRate(file: string, mib: number): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const dd = spawn('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fdatasync'], { stdio: 'ignore' });
    dd.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`dd exited ${code}`))));
  });
  const seconds = (performance.now() - started) / 1000;
  await rm(file, { force: true });
  return (mib * 2 ** 20) / 1e6 / seconds;
}

/** PUTs one body; resolves with the status once the answer is complete. */
export function put(url: string, body: Buffer | Readable, length: number, agent?: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', agent, headers: { 'content-length': length } }, (res) => {
      res.resume().once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}
