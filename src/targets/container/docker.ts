// Docker and Podman: one CLI dialect, so one adapter; each keeps its own failure
// table. Stderr as the real CLIs print it (Docker 20.10 and 28 clients, Podman 4.3).
// A daemon URL (`host:`) goes before every command: `docker -H URL`, `podman --url URL`
// (Podman then talks to that service, as `podman --remote` does).
import type { FailureRule } from './classify.js';
import type { Runtime } from './runtime.js';

export interface DockerDaemon {
  runtime: 'docker' | 'podman';
  /** The daemon's URL; without it the CLI's own default (DOCKER_HOST, CONTAINER_HOST, the local socket). */
  host?: string | undefined;
}

export interface DockerTarget extends DockerDaemon {
  container: string;
}

/** The global arguments that point the CLI at the daemon. */
export const daemonArgs = ({ runtime, host }: DockerDaemon): string[] =>
  host === undefined ? [] : [runtime === 'docker' ? '-H' : '--url', host];

export const dockerLikeFailures = (runtime: DockerDaemon['runtime']): readonly FailureRule[] => (runtime === 'docker' ? dockerFailures : podmanFailures);

export const dockerFailures: readonly FailureRule[] = [
  { match: /No such container/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /is not running|is paused|is restarting/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  // What `docker events` says when the daemon stops under it.
  { match: /unexpected EOF/i, code: 'TARGET_DOWN', says: 'the daemon went away during the call' },
  // `docker exec` whose daemon died under it: the CLI cannot ask the exit status and
  // exits -1 (255) saying nothing ("If we can't connect, then the daemon probably died",
  // docker/cli's getExecExitStatus). batch.sh never exits 255; a route's `exec` command
  // may, hence the words.
  { match: /^\s*$/, exitCode: 255, code: 'TARGET_DOWN', says: 'the daemon went away during the call (docker exited 255 saying nothing, as it does then; or the command in the container exited 255)' },
  { match: /permission denied while trying to connect/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
];

export const podmanFailures: readonly FailureRule[] = [
  // `podman cp` says `Error: container "NAME" does not exist`.
  { match: /no container with name or ID .* found|no such container|container ".*" does not exist/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /container state improper|can only create exec sessions on running containers|is not running/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /unable to connect to Podman|Cannot connect to Podman/i, code: 'TARGET_DOWN', says: 'the podman service is not reachable' },
  { match: /permission denied/i, code: 'PERMISSION_DENIED', says: 'no permission to use podman' },
];

export function dockerRuntime(target: DockerTarget): Runtime {
  const daemon = daemonArgs(target);
  return {
    runtime: target.runtime,
    command: target.runtime,
    container: target.container,
    failures: dockerLikeFailures(target.runtime),
    // As root, as Incus and LXD run it: `exec` otherwise runs as the image's USER, whose
    // tar lands files under its own uid without a word (the configured owner lost) and
    // who may not write the dest at all. batch.sh's own checks keep it inside the route.
    exec: (argv) => [...daemon, 'exec', '-i', '--user', '0:0', target.container, ...argv],
    // The daemon unpacks this one, so it works in a container without tar; commit sets
    // owner and mode (Podman 4.3 does not keep the archive's). Not Docker's -a: for a
    // container with a USER it chowns every file to that user, or fails when the image's
    // passwd has no such entry (`getent unable to find entry "1000:1000"`).
    copyIn: () => [...daemon, 'cp', '-', `${target.container}:/`],
    // A file, not `cp -`: Podman's client copies a tar from stdin whole into a temp file
    // before it sends it. The copy is owned by root with the host file's mode; commit sets both.
    pushFile: (source, dest) => [...daemon, 'cp', source, `${target.container}:${dest}`],
    copySetsOwner: false,
  };
}
