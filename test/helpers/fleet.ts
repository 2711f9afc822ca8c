// A fleet stand-in for the agent's fan-out tests: its members are directories under one
// root, each pushed into by the real local target, and the test plays the runtime:
// adds, removes, stops, starts and re-creates members, which the membership reports as
// a runtime's event stream would. The real runtimes' membership is tested against real
// containers in test/runtimes/.
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { AgentOptions } from '../../src/agent.js';
import { StevedoreError } from '../../src/errors.js';
import { createLocalTarget } from '../../src/targets/local.js';
import { createTarget as realTarget } from '../../src/targets/index.js';
import { failed, type PushItem } from '../../src/targets/target.js';
import type { Member, Membership, MembershipChange } from '../../src/targets/fleet/types.js';

export interface LocalFleet {
  createMembership: NonNullable<AgentOptions['createMembership']>;
  createTarget: NonNullable<AgentOptions['createTarget']>;
  /** A member's directory (its "container filesystem"). */
  dir(member: string): string;
  add(member: string, { running }?: { running?: boolean }): Promise<void>;
  remove(member: string): void;
  stop(member: string): void;
  start(member: string): void;
  /** The same name, a new id, an empty filesystem. */
  recreate(member: string): Promise<void>;
  /** Every push item, by member. */
  pushed: Map<string, PushItem[]>;
}

export function localFleet(root: string): LocalFleet {
  const members = new Map<string, Member>();
  // One set of listeners per membership the agent made: a reload that follows the fleet
  // anew closes the old one, which then hears nothing more, as a real one.
  const followers = new Set<((change: MembershipChange) => void)[]>();
  const pushed = new Map<string, PushItem[]>();
  let generation = 0;
  const dir = (member: string) => path.join(root, member);
  const emit = (change: Partial<MembershipChange>) => followers.forEach((listeners) => listeners.forEach((listener) => listener({ joined: [], left: [], started: [], stopped: [], ...change })));
  const membership = (): Membership => {
    const listeners: ((change: MembershipChange) => void)[] = [];
    followers.add(listeners);
    return {
      async start() {},
      members: () => [...members.values()],
      onChange: (listener) => void listeners.push(listener),
      following: true,
      async resync() {},
      async close() {
        followers.delete(listeners);
      },
    };
  };
  const set = (name: string, running: boolean) => {
    const member = { name, id: `id-${(generation += 1)}`, running };
    members.set(name, member);
    return member;
  };
  return {
    createMembership: membership,
    createTarget(name, config, logger, ledger, member) {
      if (member === undefined) return realTarget(name, config, logger, ledger);
      const local = createLocalTarget({ name: `${name}/${member}`, root: dir(member) });
      return {
        name: `${name}/${member}`,
        runtime: 'local',
        async push(items, signal) {
          pushed.set(member, [...(pushed.get(member) ?? []), ...items]);
          if (members.get(member)?.running === false) return items.map(() => failed(new StevedoreError('TARGET_DOWN', `${member} is not running`)));
          return local.push(items, signal);
        },
      };
    },
    dir,
    async add(name, { running = true } = {}) {
      await mkdir(dir(name), { recursive: true });
      emit({ joined: [set(name, running)] });
    },
    remove(name) {
      members.delete(name);
      emit({ left: [name] });
    },
    stop(name) {
      const member = members.get(name);
      if (member) emit({ stopped: [Object.assign(member, { running: false })] });
    },
    start(name) {
      const member = members.get(name);
      if (member) emit({ started: [Object.assign(member, { running: true })] });
    },
    async recreate(name) {
      // The old filesystem goes aside at once, as a runtime swaps a container's: a push
      // still writing into it made the in-place rm fail with ENOTEMPTY (once on CI).
      const old = `${dir(name)}.old-${generation}`;
      await rename(dir(name), old);
      await mkdir(dir(name), { recursive: true });
      emit({ joined: [set(name, true)] });
      await rm(old, { recursive: true, force: true, maxRetries: 5 });
    },
    pushed,
  };
}
