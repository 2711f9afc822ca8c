// Fleets on Docker and Podman. `ps -a` lists the containers whose labels match (the daemon
// filters them), the name glob is matched here; `events` streams JSON lines, filtered by
// the daemon to those labels and to the events that change who is a member or whether it
// runs (not a push's own exec_* events). Verified with Docker 20.10 (client 28) and Podman 4.3.
import { run } from '../container/cli.js';
import { daemonArgs, dockerLikeFailures, type DockerDaemon } from '../container/docker.js';
import { fields, memberOf, parseJson, unexpected } from './answers.js';
import type { Discovery } from './types.js';
import { nameMatcher } from './selector.js';
import type { Member, Selector } from './types.js';

// `docker run` is create then start; a removal die then destroy (Podman: died, remove).
const EVENTS = {
  docker: ['create', 'start', 'die', 'destroy', 'rename', 'pause', 'unpause'],
  podman: ['create', 'start', 'died', 'remove', 'rename', 'pause', 'unpause'],
};

export function dockerDiscovery(fleet: DockerDaemon & { select: Selector }): Discovery {
  const { runtime } = fleet;
  const cli = { runtime, command: runtime, failures: dockerLikeFailures(runtime) };
  const daemon = daemonArgs(fleet);
  const labels = Object.entries(fleet.select.labels).flatMap(([key, value]) => ['--filter', `label=${key}=${value}`]);
  const named = nameMatcher(fleet.select);
  // Docker prints one JSON object a line; Podman's `json` is one array of its own shape.
  const format = runtime === 'docker' ? '{{json .}}' : 'json';
  const parse = runtime === 'docker' ? parseDocker : parsePodman;
  return {
    cli,
    async list(signal) {
      const { stdout } = await run(cli, [...daemon, 'ps', '-a', '--no-trunc', ...labels, '--format', format], { signal });
      return parse(stdout).filter((member) => named(member.name));
    },
    events: [...daemon, 'events', '--format', format, '--filter', 'type=container', ...labels, ...EVENTS[runtime].flatMap((event) => ['--filter', `event=${event}`])],
    matters: () => true,
  };
}

// `{"ID":"…","Names":"web-1","State":"running",…}`; Names holds more than one name,
// comma-separated, only for legacy links (`other/alias`): the first is the container's.
function parseDocker(stdout: string): Member[] {
  return stdout.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const { ID, Names, State } = fields(parseJson(line, 'docker ps'));
    return memberOf('docker ps', String(Names ?? '').split(',')[0], ID, State === 'running');
  });
}

// `[{"Id":"…","Names":["web-1"],"State":"running","IsInfra":false,…}]`; a pod's infra
// container is the pod's, not a member.
function parsePodman(stdout: string): Member[] {
  const list = parseJson(stdout.trim() || '[]', 'podman ps');
  if (!Array.isArray(list)) throw unexpected('podman ps', list);
  return list.map(fields).filter((entry) => entry.IsInfra !== true).map(({ Id, Names, State }) =>
    memberOf('podman ps', Array.isArray(Names) ? Names[0] : undefined, Id, State === 'running'));
}
