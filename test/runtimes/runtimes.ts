// The real container runtimes the integration tests push into, with what each test
// needs to drive them: make and remove containers from the offline busybox image
// (test/runtimes/setup.sh builds it), stop and start them and their daemons, and read
// files back from inside. Under CI=true every runtime is required: a missing one fails
// its tests instead of skipping them.
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TargetConfig } from '../../src/config/schema.js';
import { tempDir } from '../helpers/temp.js';

export type RuntimeName = 'incus' | 'lxd' | 'docker' | 'podman';

export interface RuntimeUnderTest {
  name: RuntimeName;
  command: string;
  /** Why it cannot be used here, or undefined when it can. */
  missing: string | undefined;
  target(container: string): TargetConfig;
  /** A new running container from the busybox image (or NOTAR_IMAGE, which has no tar), with a unique name. */
  create(prefix?: string, image?: string, exactName?: string): Promise<string>;
  /** A new busybox container named `name` with these labels (Incus/LXD: config keys user.<key>), started unless `running` is false. */
  createLabeled(name: string, labels: Record<string, string>, running?: boolean): Promise<void>;
  /** Incus/LXD: sets one label (config key user.<key>) of a container; Docker and Podman cannot change labels. */
  relabel?(container: string, key: string, value: string): Promise<void>;
  /** A new running busybox container whose `dir` is a filesystem of its own of `size` (e.g. "1m"). */
  createWithSmallDisk(prefix: string, dir: string, size: string): Promise<string>;
  remove(container: string): Promise<void>;
  stop(container: string): Promise<void>;
  start(container: string): Promise<void>;
  /** Runs `sh -c script` in the container and answers its stdout. */
  sh(container: string, script: string, ...args: string[]): Promise<string>;
  /** For runtimes that have one. */
  daemon?: Daemon;
}

/** Stops (SIGTERM), kills (SIGKILL) and starts a runtime's daemon. */
export interface Daemon {
  /** Its process name (setup.sh stops and kills it by that name). */
  process: string;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP: a daemon that stops answering and hangs its clients; thaw: SIGCONT. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** How many connections to its socket wait for it to accept them (a frozen daemon's clients). */
  waiting(): Promise<number>;
}

const IMAGE = 'local/busybox';
/** dash and coreutils without tar (its name as test/runtimes/setup.sh imports it). */
export const NOTAR_IMAGE = 'local/notar-2';
const SETUP = fileURLToPath(new URL('setup.sh', import.meta.url));
const setup = (...args: string[]) => execa(SETUP, args, { stdio: 'inherit' }).then(() => undefined);

export const required = process.env.CI === 'true';

/** setup.sh's remote hosts (issue 13): root's incus remote to incusd over HTTPS on loopback, and dockerd's second socket. */
export const INCUS_REMOTE = 'stevedore-remote';
export const DOCKER_SECOND_HOST = 'unix:///run/stevedore-docker-2.sock';

const daemonOf = (name: string, process: string, socket: string): Daemon => ({
  process,
  stop: () => setup('stop', name),
  kill: () => setup('kill', name),
  start: () => setup('start', name),
  freeze: async () => void (await execa('pkill', ['-STOP', '-x', process])),
  thaw: async () => void (await execa('pkill', ['-CONT', '-x', process])),
  // A listening socket's receive queue (ss's third column) is its connections not yet accepted.
  waiting: async () => Number((await execa('ss', ['-xlH', 'src', socket])).stdout.trim().split(/\s+/)[2] ?? 0),
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

async function check(command: string, args: string[]): Promise<string | undefined> {
  const result = await execa(command, args, { reject: false, timeout: 20_000 });
  if (result.exitCode === 0) return undefined;
  const why = String(result.stderr || result.message || 'failed');
  return `${command} ${args.join(' ')}: ${why.split('\n')[0] ?? ''}`;
}

function incusLike(name: 'incus' | 'lxd'): Omit<RuntimeUnderTest, 'missing'> {
  const command = name === 'incus' ? 'incus' : 'lxc';
  const cli = (...args: string[]) => execa(command, args, { stdin: 'ignore' });
  return {
    name,
    command,
    target: (container) => ({ runtime: name, container }),
    async create(prefix = 'sd', image = IMAGE, exactName?: string) {
      const container = exactName ?? unique(prefix);
      await cli('launch', '-q', image, container);
      return container;
    },
    async createWithSmallDisk(prefix, dir, size) {
      const container = await this.create(prefix);
      // An unprivileged container may mount a tmpfs in its own user namespace.
      await cli('exec', container, '--', 'sh', '-c', 'mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1"', 'sh', dir, size);
      return container;
    },
    async createLabeled(container, labels, running = true) {
      const config = Object.entries(labels).flatMap(([key, value]) => ['-c', `user.${key}=${value}`]);
      await cli(running ? 'launch' : 'init', '-q', IMAGE, container, ...config);
    },
    relabel: async (container, key, value) => void (await cli('config', 'set', container, `user.${key}=${value}`)),
    remove: async (container) => void (await cli('delete', '-f', container)),
    stop: async (container) => void (await cli('stop', '-f', container)),
    start: async (container) => void (await cli('start', container)),
    sh: async (container, script, ...args) => (await cli('exec', container, '--', 'sh', '-c', script, 'sh', ...args)).stdout,
    daemon: name === 'incus' ? daemonOf('incus', 'incusd', '/var/lib/incus/unix.socket') : daemonOf('lxd', 'lxd', '/var/lib/lxd/unix.socket'),
  };
}

function dockerLike(name: 'docker' | 'podman'): Omit<RuntimeUnderTest, 'missing'> {
  const cli = (...args: string[]) => execa(name, args, { stdin: 'ignore' });
  return {
    name,
    command: name,
    target: (container) => ({ runtime: name, container }),
    async create(prefix = 'sd', image = IMAGE, exactName?: string) {
      const container = exactName ?? unique(prefix);
      await cli('run', '-d', '--name', container, '--network', 'none', image, 'sleep', '1d');
      return container;
    },
    async createLabeled(container, labels, running = true) {
      const flags = Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
      await cli(...(running ? ['run', '-d'] : ['create']), '--name', container, ...flags, '--network', 'none', IMAGE, 'sleep', '1d');
    },
    async createWithSmallDisk(prefix, dir, size) {
      const container = unique(prefix);
      await cli('run', '-d', '--name', container, '--network', 'none', '--tmpfs', `${dir}:size=${size}`, IMAGE, 'sleep', '1d');
      return container;
    },
    // Podman waits 10 s for `sleep` as PID 1 to ignore SIGTERM unless told -t 0; Docker's -f kills at once.
    remove: async (container) => void (await cli('rm', '-f', ...(name === 'podman' ? ['-t', '0'] : []), container)),
    stop: async (container) => void (await cli('stop', '-t', '0', container)),
    start: async (container) => void (await cli('start', container)),
    sh: async (container, script, ...args) => (await cli('exec', container, 'sh', '-c', script, 'sh', ...args)).stdout,
    ...(name === 'docker' ? { daemon: daemonOf('docker', 'dockerd', '/var/run/docker.sock') } : {}),
  };
}

const probes: Record<RuntimeName, string[]> = {
  incus: ['image', 'info', IMAGE],
  lxd: ['image', 'info', IMAGE],
  docker: ['image', 'inspect', IMAGE],
  podman: ['image', 'inspect', IMAGE],
};

/** Every runtime, with whether it can be used on this machine. */
export async function runtimes(): Promise<RuntimeUnderTest[]> {
  const all = [incusLike('incus'), incusLike('lxd'), dockerLike('docker'), dockerLike('podman')];
  return Promise.all(all.map(async (runtime) => ({ ...runtime, missing: await check(runtime.command, probes[runtime.name]).catch((e: Error) => e.message) })));
}

/** The runtimes to test: present ones, and under CI all of them (a missing one's tests then fail). */
export async function runtimesToTest(): Promise<RuntimeUnderTest[]> {
  return (await runtimes()).filter((r) => r.missing === undefined || required);
}

export interface WrapOptions {
  /** sh run before the real CLI, with the call's arguments. */
  before?: string;
  /** A command the real CLI runs under (e.g. as another user). */
  through?: string;
}

/**
 * A directory holding a wrapper named like `command` that appends each call's first
 * argument to `log`, then runs the real CLI: first on PATH, it counts the calls.
 */
export async function wrapCli(command: string, { before = '', through = '' }: WrapOptions = {}): Promise<{ dir: string; log: string }> {
  const dir = await tempDir();
  const real = (await execa('sh', ['-c', `command -v ${command}`])).stdout;
  const log = path.join(dir, 'calls.log');
  await writeFile(path.join(dir, command), `#!/bin/sh\necho "$1" >> '${log}'\n${before}\nexec ${through} '${real}' "$@"\n`);
  await chmod(path.join(dir, command), 0o755);
  await writeFile(log, '');
  return { dir, log };
}
