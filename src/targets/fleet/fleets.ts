// The agent's fleets (SPEC §7): for each target with a `select`, who its members are
// (membership), an adapter per member, and bringing each new member to the declared
// state. A member is new when its name was not seen, or comes back with a new id (a
// re-created container, fresh filesystem): it gets a delivery of every task still live
// (the queue's fan-out) and, from the retained versions, the newest version of each
// destination that routes and drop watches with `retain: true`, and mirrors, sent to
// this target. Members brought there are remembered (state_dir/fleets/<target>.json), so
// a restart does not send it all again.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isFleet, type FleetConfig, type TargetConfig } from '../../config/schema.js';
import { errnoCode } from '../../errors.js';
import { makeDir, writeFileDurable } from '../../durable.js';
import type { RetainStore, RetainedVersion } from '../../spool/retain.js';
import { newTaskId, type Task } from '../../task.js';
import type { Target } from '../target.js';
import type { Member, Membership, MembershipChange } from './types.js';

export interface FleetsOptions {
  /** state_dir/fleets */
  dir: string;
  logger: Logger;
  retain: RetainStore;
  queue: {
    enqueue(task: Task): void;
    membersChanged(target: string, change: MembershipChange): void;
  };
  createMembership(name: string, config: FleetConfig): Membership;
  /** The adapter that pushes into one member. */
  memberTarget(name: string, config: FleetConfig, member: string): Target;
}

export interface MemberStatus extends Member {
  /** Brought to the declared state (catch-up done, or nothing to catch up). */
  ready: boolean;
}

export interface FleetStatus {
  name: string;
  following: boolean;
  members: MemberStatus[];
}

export interface Fleets {
  /** Starts following the fleets among `targets`, or (a reload) follows the new selectors. */
  configure(targets: Readonly<Record<string, TargetConfig>>): Promise<void>;
  /** A fleet's members now; undefined for a target that is not a fleet. */
  members(name: string): readonly Member[] | undefined;
  target(name: string, member: string): Target | undefined;
  /** A task ended: a member's catch-up may be over. */
  settled(task: Task, how: 'done' | 'failed' | 'superseded'): void;
  status(): FleetStatus[];
  close(): Promise<void>;
}

interface Followed {
  config: FleetConfig;
  membership: Membership;
  adapters: Map<string, Target>;
  /** Members brought to the declared state: name → id. */
  known: Map<string, string>;
  /** Members catching up: name → id and the ids of its catch-up tasks still going. */
  catching: Map<string, { id: string; left: Set<string>; failed: boolean }>;
  /** The last save of `known`: saves run one at a time (see saveKnown). */
  saving: Promise<void>;
}

export function createFleets(options: FleetsOptions): Fleets {
  const { logger, retain, queue } = options;
  const fleets = new Map<string, Followed>();
  const fileOf = (name: string) => path.join(options.dir, `${name}.json`);

  async function loadKnown(name: string): Promise<Map<string, string>> {
    const text = await readFile(fileOf(name), 'utf8').catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? undefined : Promise.reject(error)));
    return new Map(Object.entries(text === undefined ? {} : ((JSON.parse(text) as { members?: Record<string, string> }).members ?? {})));
  }
  // One save at a time, each writing the members known when it runs: overlapping saves
  // (members made ready together) renamed their files in any order, an older one last,
  // and a member left out was sent every retained version again at the next start.
  const saveKnown = (name: string, fleet: Followed) =>
    (fleet.saving = fleet.saving
      .then(() => writeFileDurable(fileOf(name), JSON.stringify({ members: Object.fromEntries(fleet.known) })))
      .catch((error: unknown) => logger.warn({ target: name, err: error }, 'could not save which fleet members are in their declared state')));

  // A new member gets the newest retained version of each destination, as tasks for it
  // alone. So does a member that started again (`again`): whether its filesystem kept
  // our files (a tmpfs, an ephemeral container) cannot be told without looking, and
  // pushing the retained versions again is what looking would cost anyway.
  function catchUp(name: string, fleet: Followed, member: Member, again = false): void {
    if (fleet.catching.get(member.name)?.id === member.id) return;
    if (!again && fleet.known.get(member.name) === member.id) return;
    const versions = retain.versions(name);
    logger.info({ target: name, container: member.name, id: member.id, versions: versions.length }, again ? 'a fleet member started again: bringing it to the declared state' : 'a new fleet member: bringing it to the declared state');
    if (versions.length === 0) return ready(name, fleet, member);
    const tasks = versions.map((version) => retainedTask(version, member.name));
    fleet.catching.set(member.name, { id: member.id, left: new Set(tasks.map((task) => task.id)), failed: false });
    for (const task of tasks) queue.enqueue(task);
  }

  function ready(name: string, fleet: Followed, member: Member): void {
    fleet.catching.delete(member.name);
    fleet.known.set(member.name, member.id);
    void saveKnown(name, fleet);
  }

  function changed(name: string, fleet: Followed, change: MembershipChange): void {
    for (const gone of change.left) {
      fleet.adapters.delete(gone);
      fleet.catching.delete(gone);
    }
    queue.membersChanged(name, change);
    for (const member of change.joined) catchUp(name, fleet, member);
    for (const member of change.started) catchUp(name, fleet, member, true);
  }

  async function follow(name: string, config: FleetConfig): Promise<void> {
    const membership = options.createMembership(name, config);
    const fleet: Followed = { config, membership, adapters: new Map(), known: await loadKnown(name), catching: new Map(), saving: Promise.resolve() };
    fleets.set(name, fleet);
    membership.onChange((change) => changed(name, fleet, change));
    // A runtime that does not answer now does not stop the agent: its tasks wait for members.
    await membership.start().catch((error: unknown) => logger.warn({ target: name, err: error }, 'cannot list the fleet\'s members now; its tasks wait for them'));
    // The first list: whoever the runtime shows now has joined, as far as the queue knows.
    changed(name, fleet, { joined: [...membership.members()], left: [], started: [], stopped: [] });
  }

  // Stops following a fleet; answers who its members were.
  async function unfollow(name: string): Promise<string[]> {
    const fleet = fleets.get(name);
    if (!fleet) return [];
    fleets.delete(name);
    await fleet.membership.close();
    await fleet.saving;
    return fleet.membership.members().map((m) => m.name);
  }

  // A reload: a fleet whose selector (or daemon) changed is followed anew; its members
  // that no longer match stop receiving, new ones catch up.
  async function refollow(name: string, next: TargetConfig | undefined): Promise<void> {
    const before = await unfollow(name);
    if (isFleet(next)) await follow(name, next);
    const now = new Set(fleets.get(name)?.membership.members().map((m) => m.name));
    const left = before.filter((member) => !now.has(member));
    if (left.length > 0) queue.membersChanged(name, { joined: [], left, started: [], stopped: [] });
  }

  return {
    async configure(targets) {
      await makeDir(options.dir);
      for (const name of [...fleets.keys()]) {
        if (!sameConfig(fleets.get(name)?.config, targets[name])) await refollow(name, targets[name]);
      }
      for (const [name, config] of Object.entries(targets)) if (isFleet(config) && !fleets.has(name)) await follow(name, config);
    },
    members: (name) => fleets.get(name)?.membership.members(),
    target(name, member) {
      const fleet = fleets.get(name);
      if (!fleet?.membership.members().some((m) => m.name === member)) return undefined;
      let adapter = fleet.adapters.get(member);
      if (!adapter) fleet.adapters.set(member, (adapter = options.memberTarget(name, fleet.config, member)));
      return adapter;
    },
    settled(task, how) {
      const member = task.retained ? task.members?.[0] : undefined;
      const fleet = member === undefined ? undefined : fleets.get(task.target);
      const catching = member === undefined ? undefined : fleet?.catching.get(member);
      // Only this catch-up's own tasks count: those of one it replaced (a reload that
      // followed the fleet anew) end too, superseded, and counted as this one's they made
      // the member ready, and remembered so, before it had a single file.
      if (!fleet || !catching || member === undefined || !catching.left.delete(task.id)) return;
      catching.failed ||= how === 'failed';
      if (catching.left.size > 0) return;
      if (catching.failed) {
        fleet.catching.delete(member);
        logger.warn({ target: task.target, container: member }, 'a new fleet member did not get every retained version (see dead-letter); it catches up again when the agent starts');
      } else ready(task.target, fleet, { name: member, id: catching.id, running: true });
    },
    status: () =>
      [...fleets].map(([name, fleet]) => ({
        name,
        following: fleet.membership.following,
        members: fleet.membership.members().map((m) => ({ ...m, ready: fleet.known.get(m.name) === m.id })),
      })),
    async close() {
      await Promise.all([...fleets.keys()].map((name) => unfollow(name)));
    },
  };
}

const sameConfig = (a: FleetConfig | undefined, b: TargetConfig | undefined) => JSON.stringify(a) === JSON.stringify(b);

// A retained version as a task for one member: never journaled (the store is its record).
function retainedTask(version: RetainedVersion, member: string): Task {
  const { target, dest, sha256, bytes, options, route, createdAt } = version;
  return {
    id: newTaskId(),
    kind: 'put',
    source: 'retain',
    route,
    target,
    dest,
    bytes,
    sha256,
    staged: '',
    createdAt,
    options,
    members: [member],
    retained: true,
    status: 'queued',
    attempts: 0,
    updatedAt: new Date().toISOString(),
  };
}
