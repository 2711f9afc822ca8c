// What the benchmarks into real containers share (test/runtimes/setup.sh makes the
// runtimes and their local/busybox image): the four runtimes' CLIs, creating, stopping
// and removing a container, running a command in one, waiting for files to land in
// one, and alternating rounds of a figure and its reference.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

export type Runtime = 'incus' | 'lxd' | 'docker' | 'podman';

/** RUNTIMES (comma-separated) or all four. */
export const runtimesFromEnv = () => (process.env.RUNTIMES ?? 'incus,lxd,docker,podman').split(',').filter(Boolean) as Runtime[];

/** Incus and LXD: one dialect, two CLIs. */
export const incusLike = (runtime: Runtime): runtime is 'incus' | 'lxd' => runtime === 'incus' || runtime === 'lxd';
export const cli = (runtime: Runtime) => (runtime === 'lxd' ? 'lxc' : runtime);

export const execArgs = (runtime: Runtime, container: string, argv: string[]) =>
  incusLike(runtime) ? ['exec', container, '--', ...argv] : ['exec', '-i', container, ...argv];

export const inContainer = async (runtime: Runtime, container: string, script: string) =>
  (await execa(cli(runtime), execArgs(runtime, container, ['sh', '-c', script]), { stdin: 'ignore' })).stdout;

export const containerName = (prefix = 'sd-bench') => `${prefix}-${randomBytes(3).toString('hex')}`;

/**
 * Creates and starts a container of local/busybox; `labels` are Docker/Podman labels,
 * Incus/LXD `user.<key>` config keys (what a fleet's `select.labels` matches).
 */
export async function createContainer(runtime: Runtime, { name = containerName(), labels = {} }: { name?: string; labels?: Record<string, string> } = {}): Promise<string> {
  const pairs = Object.entries(labels);
  if (incusLike(runtime)) await execa(cli(runtime), ['launch', '-q', 'local/busybox', name, ...pairs.flatMap(([k, v]) => ['-c', `user.${k}=${v}`])], { stdin: 'ignore' });
  else await execa(runtime, ['run', '-d', '--name', name, '--network', 'none', ...pairs.flatMap(([k, v]) => ['--label', `${k}=${v}`]), 'local/busybox', 'sleep', '1d'], { stdin: 'ignore' });
  return name;
}

export const removeContainer = (runtime: Runtime, name: string) =>
  incusLike(runtime) ? execa(cli(runtime), ['delete', '-f', name], { reject: false }) : execa(runtime, ['rm', '-f', ...(runtime === 'podman' ? ['-t', '0'] : []), name], { reject: false });

/** Stops a container at once (busybox's `sleep` as PID 1 ignores SIGTERM). */
export const stopContainer = (runtime: Runtime, name: string) =>
  execa(cli(runtime), incusLike(runtime) ? ['stop', '-f', name] : ['stop', '-t', '0', name], { stdin: 'ignore' });

export const startContainer = (runtime: Runtime, name: string) => execa(cli(runtime), ['start', name], { stdin: 'ignore' });

/** Where the container's filesystem is seen from the host while it runs (root; Incus/LXD on a `dir` pool). */
export async function rootfsOf(runtime: Runtime, name: string): Promise<string> {
  if (runtime === 'incus') return `/var/lib/incus/containers/${name}/rootfs`;
  if (runtime === 'lxd') return `/var/lib/lxd/containers/${name}/rootfs`;
  return (await execa(runtime, ['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', name])).stdout.trim();
}

export const seconds = (since: number) => (performance.now() - since) / 1000;
export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** Runs `a` and `b` in alternating rounds; answers the median of each. */
export async function alternate(rounds: number, a: (round: number) => Promise<number>, b: (round: number) => Promise<number>): Promise<[number, number]> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    as.push(await a(round));
    bs.push(await b(round));
  }
  return [median(as), median(bs)];
}

/**
 * Resolves when `dir` in the container holds `count` files (a tree counts; files being
 * staged under `.stevedore-*` do not): one process polling inside every `everyMs`, not
 * one exec per poll. Landing is a rename, so a file counted is whole.
 */
export async function landedIn(runtime: Runtime, container: string, dir: string, count: number, everyMs = 50): Promise<() => Promise<void>> {
  const script = `echo started; until [ "$(find ${dir} -type f ! -path '*/.stevedore-*' 2>/dev/null | wc -l)" -ge ${count} ]; do usleep ${everyMs * 1000}; done`;
  const watcher = execa(cli(runtime), execArgs(runtime, container, ['sh', '-c', script]), { stdin: 'ignore', buffer: false });
  await new Promise<void>((resolve, reject) => {
    watcher.stdout?.once('data', () => resolve());
    watcher.catch(reject);
  });
  return async () => void (await watcher);
}

/** The floor: `tar -c` of `dir` on the host piped into `tar -x` in the container, nothing else; answers seconds. */
export async function rawTar(runtime: Runtime, container: string, dir: string, dest: string): Promise<number> {
  await inContainer(runtime, container, `rm -rf ${dest} && mkdir -p ${dest}`);
  const started = performance.now();
  const tar = spawn('tar', ['-cf', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const into = spawn(cli(runtime), execArgs(runtime, container, ['tar', '-xf', '-', '-C', dest]), { stdio: ['pipe', 'inherit', 'inherit'] });
  tar.stdout.pipe(into.stdin);
  await new Promise((resolve, reject) => into.once('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`tar -x exited ${code}`)))));
  return seconds(started);
}
