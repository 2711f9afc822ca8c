// Docker and Podman: one CLI dialect, so one adapter; each keeps its own failure
// table. Stderr as the real CLIs print it (Docker 20.10 and 28 clients, Podman 4.3).
import type { FailureRule } from './classify.js';
import type { Runtime } from './runtime.js';

export interface DockerTarget {
  runtime: 'docker' | 'podman';
  container: string;
}

export const dockerFailures: readonly FailureRule[] = [
  { match: /No such container/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /is not running|is paused|is restarting/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i, code: 'TARGET_DOWN', says: 'the daemon is not running' },
  { match: /permission denied while trying to connect/i, code: 'PERMISSION_DENIED', says: 'no permission to use the daemon socket' },
];

export const podmanFailures: readonly FailureRule[] = [
  { match: /no container with name or ID .* found|no such container/i, code: 'TARGET_NOT_FOUND', says: 'no such container' },
  { match: /container state improper|can only create exec sessions on running containers|is not running/i, code: 'TARGET_DOWN', says: 'the container is not running' },
  { match: /unable to connect to Podman|Cannot connect to Podman/i, code: 'TARGET_DOWN', says: 'the podman service is not reachable' },
  { match: /permission denied/i, code: 'PERMISSION_DENIED', says: 'no permission to use podman' },
];

export function dockerRuntime(target: DockerTarget): Runtime {
  return {
    runtime: target.runtime,
    command: target.runtime,
    container: target.container,
    failures: target.runtime === 'docker' ? dockerFailures : podmanFailures,
    exec: (argv) => ['exec', '-i', target.container, ...argv],
    // The daemon unpacks this one, so it works in a container without tar. Docker keeps
    // the archive's owners with -a; Podman 4.3 does not, and commit sets them.
    copyIn: () => ['cp', ...(target.runtime === 'docker' ? ['-a'] : []), '-', `${target.container}:/`],
  };
}
