// Fleets on Incus and LXD. A label is a config key `user.<key>` (the instance's own, or
// one of its profiles': the expanded config); a member's id is `volatile.uuid`, which a
// re-created instance gets anew. One `query` of the instances lists them with their
// config (`--project` is refused by `query`: the project goes in the URL), and `monitor
// --type=lifecycle --format json` streams their events, one JSON object a line (blank
// lines between). Verified with Incus 6.0 and LXD 5.0.
import { run } from '../container/cli.js';
import { incusCommand, incusLikeFailures, type IncusServer } from '../container/incus.js';
import { fields, memberOf, parseJson, unexpected } from './answers.js';
import type { Discovery } from './types.js';
import { labelsMatch, nameMatcher } from './selector.js';
import type { Member, Selector } from './types.js';

// The lifecycle actions that may change who is a member or whether it runs; a push's own
// are instance-exec and instance-file-pushed. A profile's user.* keys label its instances.
const ACTIONS = new Set([
  'instance-created', 'instance-started', 'instance-stopped', 'instance-shutdown', 'instance-restarted', 'instance-deleted',
  'instance-renamed', 'instance-updated', 'instance-paused', 'instance-resumed', 'profile-updated',
]);

export function incusDiscovery(fleet: IncusServer & { select: Selector }): Discovery {
  const on = fleet.remote ? `${fleet.remote}:` : '';
  const cli = { runtime: fleet.runtime, command: incusCommand(fleet.runtime), failures: incusLikeFailures(fleet, on || 'the local server') };
  const project = fleet.project === undefined ? '' : `&project=${encodeURIComponent(fleet.project)}`;
  const named = nameMatcher(fleet.select);
  return {
    cli,
    async list(signal) {
      const { stdout } = await run(cli, ['query', `${on}/1.0/instances?recursion=1${project}`], { signal });
      const members = parseInstances(stdout).filter(({ member, labels }) => named(member.name) && labelsMatch(fleet.select, labels));
      // Instances of a project that does not exist are none: asked again, it says so.
      if (members.length === 0 && fleet.project !== undefined) await run(cli, ['query', `${on}/1.0/projects/${encodeURIComponent(fleet.project)}`], { signal });
      return members.map(({ member }) => member);
    },
    events: ['monitor', ...(on ? [on] : []), '--type=lifecycle', '--format', 'json', ...(fleet.project === undefined ? [] : ['--project', fleet.project])],
    matters: (line) => line.trim() !== '' && matters(line),
  };
}

interface Instance {
  member: Member;
  labels: Record<string, string>;
}

function parseInstances(stdout: string): Instance[] {
  const list = parseJson(stdout, 'instances');
  if (!Array.isArray(list)) throw unexpected('instances', list);
  return list.map((entry) => {
    const { name, status, config, expanded_config: expanded } = fields(entry);
    const member = memberOf('instances', name, fields(config)['volatile.uuid'], status === 'Running');
    return { member, labels: labelsOf(fields(expanded)) };
  });
}

const labelsOf = (config: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(config).filter(([key]) => key.startsWith('user.')).map(([key, value]) => [key.slice('user.'.length), String(value)]));

// A line that is not JSON (a CLI that prints something else) is looked into anyway: a look is cheap and always right.
function matters(line: string): boolean {
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    return true;
  }
  return ACTIONS.has(String(fields(fields(event).metadata).action));
}
