// The kinds of target the conformance suite runs against: the local target (a host
// directory standing in for a container's filesystem) and each container runtime on
// this machine. A kind makes a fresh place (a root directory, a container), gives the
// target config that reaches it, looks inside it, removes it, and says what it can do.
// Scripts that look inside run with "$R" as the place's root: empty in a container,
// the root directory for the local target, whose scripts run on the host.
import { execa } from 'execa';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TargetConfig } from '../../src/config/schema.js';
import { runtimesToTest, type RuntimeUnderTest } from './runtimes.js';

export interface Capabilities {
  /** Gives a landed file any owner: a container's root does; the local target only when the agent runs as root. */
  owners: boolean;
  /** Stages each directory's files in DIR/.stevedore-TAG/ through batch.sh (its checks can be driven directly). */
  batchScript: boolean;
  /** Without tar in the container, lands files by the runtime's own copy. */
  copyFallback: boolean;
  /** Runs a route's or watch's `exec` in the place once a batch landed. */
  exec: boolean;
  /** The CLI command that sends a file past 64 MiB by the runtime's own copy (`file` push for Incus and LXD, `cp` for Docker and Podman). */
  filePush: 'file' | 'cp' | undefined;
  /** Reaches a container as remote:name and inside a project (Incus, LXD). */
  projects: boolean;
}

export interface TargetKind {
  name: string;
  /** Why it cannot be used here, or undefined when it can. */
  missing: string | undefined;
  can: Capabilities;
  /** The container runtime behind the kind: its CLI, containers and daemon. The cases about them need one. */
  runtime?: RuntimeUnderTest;
  /** A fresh, empty place whose /sys refuses writes, as a container's does. */
  create(): Promise<string>;
  remove(place: string): Promise<void>;
  target(place: string): TargetConfig;
  /** Runs `sh -c script` with "$R" set to the place's root, and answers its stdout. */
  sh(place: string, script: string, ...args: string[]): Promise<string>;
  /** The `where` of a staging note for a batch into the place. */
  where(place: string): string;
  /** What a batch tagged KILLED, killed mid-push, leaves in a directory it stages in (relative to it). */
  killedLeaves: string;
}

const isRoot = process.getuid?.() === 0;

// As root nothing but a read-only filesystem refuses a write, so /sys is one, as in an
// unprivileged container; anyone else is refused by a directory's mode.
async function refuseWrites(dir: string): Promise<void> {
  await mkdir(dir, isRoot ? {} : { mode: 0o555 });
  if (isRoot) await execa('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'stevedore-ro', dir]);
}

export const localKind: TargetKind = {
  name: 'local',
  missing: undefined,
  can: { owners: isRoot, batchScript: false, copyFallback: false, exec: false, filePush: undefined, projects: false },
  async create() {
    const root = await mkdtemp(path.join(tmpdir(), 'stevedore-local-'));
    await refuseWrites(path.join(root, 'sys'));
    return root;
  },
  async remove(root) {
    if (isRoot) await execa('umount', [path.join(root, 'sys')]);
    await rm(root, { recursive: true, force: true });
  },
  target: (root) => ({ runtime: 'local', root }),
  // LC_ALL=C: sort and globs in byte order, as busybox's in the containers.
  sh: async (root, script, ...args) => (await execa('sh', ['-c', script, 'sh', ...args], { stdin: 'ignore', env: { R: root, LC_ALL: 'C' } })).stdout,
  where: (root) => root,
  killedLeaves: '.stevedore-KILLED-1.tmp',
};

const incusLike = (name: string) => name === 'incus' || name === 'lxd';

export const containerKind = (runtime: RuntimeUnderTest): TargetKind => ({
  name: runtime.name,
  missing: runtime.missing,
  can: { owners: true, batchScript: true, copyFallback: true, exec: true, filePush: incusLike(runtime.name) ? 'file' : 'cp', projects: incusLike(runtime.name) },
  runtime,
  create: () => runtime.create(),
  remove: (container) => runtime.remove(container),
  target: (container) => runtime.target(container),
  sh: (container, script, ...args) => runtime.sh(container, script, ...args),
  where: (container) => container,
  killedLeaves: '.stevedore-KILLED/f',
});

/** The local target, which needs no runtime, and the container runtimes to test (see runtimesToTest). */
export async function kindsToTest(): Promise<TargetKind[]> {
  return [localKind, ...(await runtimesToTest()).map(containerKind)];
}
