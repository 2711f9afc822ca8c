// What the fleet tests share: a membership started on a real runtime and closed with the
// test, the changes it reported with when, and waiting for the next one of a kind.
import { onTestFinished } from 'vitest';
import { createMembership } from '../../src/targets/fleet/membership.js';
import type { Fleet } from '../../src/targets/fleet/discovery.js';
import type { Member, Membership, MembershipChange } from '../../src/targets/fleet/types.js';
import { waitFor } from '../helpers/wait.js';
import { captureLogs } from './pushing.js';

export interface Seen {
  at: number;
  change: MembershipChange;
}

export interface Followed {
  membership: Membership;
  logs: Record<string, unknown>[];
  /** Every change so far, with performance.now() when the listener was told. */
  seen: Seen[];
  /** The first change after the last one taken that passes `test`. */
  next(test: (change: MembershipChange) => boolean, what: string, timeoutMs?: number): Promise<Seen>;
}

/** A membership of `fleet`, started, following its stream, and closed when the test ends. */
export async function followFleet(fleet: Fleet): Promise<Followed> {
  const { lines, logger } = captureLogs();
  const membership = createMembership(fleet, { logger });
  onTestFinished(() => membership.close());
  const seen: Seen[] = [];
  membership.onChange((change) => seen.push({ at: performance.now(), change }));
  await membership.start();
  await waitFor(() => membership.following, { timeoutMs: 10_000, what: 'the event stream to connect' });
  let taken = 0;
  return {
    membership,
    logs: lines,
    seen,
    async next(test, what, timeoutMs = 15_000) {
      const index = await waitFor(() => {
        const found = seen.findIndex((entry, i) => i >= taken && test(entry.change));
        return found >= 0 ? found + 1 : undefined;
      }, { timeoutMs, what });
      taken = index;
      return seen[index - 1] as Seen;
    },
  };
}

const has = (members: Member[], name: string) => members.some((member) => member.name === name);
export const joined = (name: string) => (change: MembershipChange) => has(change.joined, name);
export const started = (name: string) => (change: MembershipChange) => has(change.started, name);
export const stopped = (name: string) => (change: MembershipChange) => has(change.stopped, name);
export const left = (name: string) => (change: MembershipChange) => change.left.includes(name);

/** The members sorted by name, for comparing with what a test made. */
export const byName = (members: readonly Member[]) => [...members].sort((a, b) => (a.name < b.name ? -1 : 1));

/** The median and the largest of some milliseconds, rounded. */
export function spread(values: number[]): { p50: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: Math.round(sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN), max: Math.round(sorted.at(-1) ?? NaN) };
}
