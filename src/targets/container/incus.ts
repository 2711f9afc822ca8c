// Incus and LXD: one CLI dialect (`incus` / `lxc`), so one adapter; each keeps its own
// failure table. Stderr as the real CLIs print it (Incus 6.0, LXD 5.0).
import type { FailureRule } from './classify.js';
import type { Runtime } from './runtime.js';

export interface IncusTarget {
  runtime: 'incus' | 'lxd';
  /** "name" or "remote:name". */
  container: string;
  project?: string | undefined;
}

const common = (daemon: RegExp): FailureRule[] => [
  { match: /Instance not found|Failed to fetch instance|Failed to get instance/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /Project not found/i, code: 'TARGET_NOT_FOUND', says: 'no such project' },
  { match: /The remote "[^"]*" doesn't exist/i, code: 'TARGET_NOT_FOUND', says: 'no such remote' },
  { match: /Instance is not running|Instance is frozen|Instance is busy/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: daemon, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  { match: /unix\.socket: connect: (no such file|connection refused)|connection refused|unexpected EOF/i, code: 'TARGET_DOWN', says: 'the daemon is not reachable' },
  { match: /unix\.socket: connect: permission denied/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
];

export const incusFailures: readonly FailureRule[] = common(/The incus daemon doesn't appear to be started/i);
export const lxdFailures: readonly FailureRule[] = common(/The LXD daemon doesn't appear to be started/i);

export function incusRuntime(target: IncusTarget): Runtime {
  const project = target.project ? ['--project', target.project] : [];
  const [remote, name] = target.container.includes(':') ? target.container.split(/:(.*)/s) : ['', target.container];
  const ref = remote ? `${remote}:${name}` : target.container;
  const command = target.runtime === 'incus' ? 'incus' : 'lxc';
  return {
    runtime: target.runtime,
    command,
    container: target.container,
    failures: target.runtime === 'incus' ? incusFailures : lxdFailures,
    exec: (argv) => ['exec', ...project, ref, '--', ...argv],
    pushFile: (source, dest, { uid, gid }, mode) => [
      'file', 'push', '-q', ...project, '--uid', String(uid), '--gid', String(gid), '--mode', mode.toString(8).padStart(4, '0'),
      source, `${ref}${dest}`,
    ],
  };
}
