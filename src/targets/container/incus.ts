// Incus and LXD: one CLI dialect (`incus` / `lxc`), so one adapter; each keeps its own
// failure table. Stderr as the real CLIs print it (Incus 6.0, LXD 5.0), each case
// provoked in test/runtimes/conformance.test.ts (a remote's in fleet-remotes.test.ts).
// A remote (`remote:`, added with `incus remote add`) prefixes every instance: `REMOTE:NAME`.
import type { FailureRule } from './classify.js';
import type { Runtime } from './runtime.js';

export interface IncusServer {
  runtime: 'incus' | 'lxd';
  /** A remote added with `incus remote add` (`lxc remote add`); without it the CLI's default one. */
  remote?: string | undefined;
  project?: string | undefined;
}

export interface IncusTarget extends IncusServer {
  /** "name", or "remote:name" without `remote`. */
  container: string;
}

export const incusCommand = (runtime: IncusServer['runtime']) => (runtime === 'incus' ? 'incus' : 'lxc');

// Rules first for what one daemon says in its own words, then for what both say, then
// for what Go's HTTP client says about the daemon's socket: missing (not started), refused
// (killed), forbidden, or cut while the CLI waited on it (its connection, or an exec's websocket).
// A remote over HTTPS: not listening (`Unable to connect to: 127.0.0.1:8443 ([dial tcp …:
// connect: connection refused])`), our client certificate not trusted (`not authorized`), or
// its certificate no longer the one `remote add` accepted (`tls: failed to verify certificate`).
const table = (own: FailureRule[]): FailureRule[] => [
  ...own,
  { match: /Instance not found|Failed to fetch instance|Failed to get instance/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /Project not found/i, code: 'TARGET_NOT_FOUND', says: 'no such project' },
  { match: /The remote "[^"]*" doesn't exist/i, code: 'TARGET_NOT_FOUND', says: 'no such remote' },
  { match: /Unable to connect to: /i, code: 'TARGET_DOWN', says: 'the remote is not reachable' },
  { match: /\bnot authorized\b/i, code: 'PERMISSION_DENIED', says: 'the remote does not trust this client\'s certificate' },
  { match: /failed to verify certificate|x509: /i, code: 'PERMISSION_DENIED', says: 'the remote\'s certificate is not the one trusted when it was added' },
  { match: /Instance is not running|Instance is frozen|Instance is busy/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /unix\.socket: connect: no such file or directory/i, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  { match: /unix\.socket: connect: permission denied/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
  { match: /connection refused/i, code: 'TARGET_DOWN', says: 'the daemon is not reachable' },
  { match: /sql: database is closed/i, code: 'TARGET_DOWN', says: 'the daemon is shutting down' },
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

export const incusLikeFailures = ({ runtime, project }: IncusServer, where: string): readonly FailureRule[] =>
  runtime === 'incus' ? incusFailures : lxdFailures(project ? `${where} in project ${project}` : where);

export function incusRuntime(target: IncusTarget): Runtime {
  const project = target.project ? ['--project', target.project] : [];
  const ref = target.remote ? `${target.remote}:${target.container}` : target.container;
  return {
    runtime: target.runtime,
    command: incusCommand(target.runtime),
    container: ref,
    failures: incusLikeFailures(target, ref),
    exec: (argv) => ['exec', ...project, ref, '--', ...argv],
    copySetsOwner: true,
    pushFile: (source, dest, { uid, gid }, mode) => [
      'file', 'push', '-q', ...project, '--uid', String(uid), '--gid', String(gid), '--mode', mode.toString(8).padStart(4, '0'),
      source, `${ref}${dest}`,
    ],
  };
}
