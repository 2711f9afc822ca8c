// Incus and LXD: one CLI dialect (`incus` / `lxc`), so one adapter; each keeps its own
// failure table. Stderr as the real CLIs print it (Incus 6.0, LXD 5.0), each case
// provoked in test/runtimes/conformance.test.ts.
import type { FailureRule } from './classify.js';
import type { Runtime } from './runtime.js';

export interface IncusTarget {
  runtime: 'incus' | 'lxd';
  /** "name" or "remote:name". */
  container: string;
  project?: string | undefined;
}

// Rules first for what one daemon says in its own words, then for what both say, then
// for what Go's HTTP client says about the daemon's socket: missing (not started), refused
// (killed), forbidden, or cut while the CLI waited on it (its connection, or an exec's websocket).
const table = (own: FailureRule[]): FailureRule[] => [
  ...own,
  { match: /Instance not found|Failed to fetch instance|Failed to get instance/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /Project not found/i, code: 'TARGET_NOT_FOUND', says: 'no such project' },
  { match: /The remote "[^"]*" doesn't exist/i, code: 'TARGET_NOT_FOUND', says: 'no such remote' },
  { match: /Instance is not running|Instance is frozen|Instance is busy/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /unix\.socket: connect: no such file or directory/i, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  { match: /unix\.socket: connect: permission denied/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
  { match: /connection refused/i, code: 'TARGET_DOWN', says: 'the daemon is not reachable' },
  { match: /unix\.socket(\/[^"]*)?": EOF|unix\.socket: (read|write): (broken pipe|connection reset by peer)|unexpected EOF/i, code: 'TARGET_DOWN', says: 'the daemon went away during the call' },
];

// `Error: The incus daemon doesn't appear to be started (socket path: …/unix.socket)`,
// `Error: You don't have the needed permissions to talk to the incus daemon (socket path: …)`.
export const incusFailures: readonly FailureRule[] = table([
  { match: /The incus daemon doesn't appear to be started/i, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  { match: /You don't have the needed permissions to talk to the incus daemon/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
]);
// LXD 5.0 has no words of its own for its socket (`Error: Get "http://unix.socket/1.0":
// dial unix /var/lib/lxd/unix.socket: connect: no such file or directory`), and says
// `Error: Instance not found` for a missing container or project, naming neither: the
// rule names `where` (the container, and its project if one is set).
export const lxdFailures = (where: string): readonly FailureRule[] => table([
  { match: /Instance not found/i, code: 'TARGET_NOT_FOUND', says: `no such container ${where}` },
]);

export function incusRuntime(target: IncusTarget): Runtime {
  const project = target.project ? ['--project', target.project] : [];
  const [remote, name] = target.container.includes(':') ? target.container.split(/:(.*)/s) : ['', target.container];
  const ref = remote ? `${remote}:${name}` : target.container;
  const command = target.runtime === 'incus' ? 'incus' : 'lxc';
  return {
    runtime: target.runtime,
    command,
    container: target.container,
    failures: target.runtime === 'incus' ? incusFailures : lxdFailures(target.project ? `${ref} in project ${target.project}` : ref),
    exec: (argv) => ['exec', ...project, ref, '--', ...argv],
    pushFile: (source, dest, { uid, gid }, mode) => [
      'file', 'push', '-q', ...project, '--uid', String(uid), '--gid', String(gid), '--mode', mode.toString(8).padStart(4, '0'),
      source, `${ref}${dest}`,
    ],
  };
}
