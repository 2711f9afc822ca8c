// What changed between two looks at a fleet. A member is known by its name; a known name
// with a new id is a new container (re-created: a fresh filesystem), so it joins again.
import type { Member, MembershipChange } from './types.js';

/** The change from `before` to `after`, or undefined when there is none. */
export function diffMembers(before: readonly Member[], after: readonly Member[]): MembershipChange | undefined {
  const known = new Map(before.map((member) => [member.name, member]));
  const names = new Set(after.map((member) => member.name));
  const change: MembershipChange = { joined: [], left: [], started: [], stopped: [] };
  for (const member of after) {
    const was = known.get(member.name);
    if (was === undefined || was.id !== member.id) change.joined.push(member);
    else if (member.running && !was.running) change.started.push(member);
    else if (!member.running && was.running) change.stopped.push(member);
  }
  for (const { name } of before) if (!names.has(name)) change.left.push(name);
  const empty = Object.values(change).every((list) => list.length === 0);
  return empty ? undefined : change;
}
