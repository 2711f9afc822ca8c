// The deliveries of a fleet's tasks (SPEC §7): one task per file, one delivery per
// member. A delivery is a child task (its own id, the parent's file, `member` set) that
// waits, retries and fails in its member's lane like any task; the parent is over when
// every delivery is: done when all landed (or were replaced by a newer file, or their
// member left), failed when one failed for good (that delivery alone is dead-lettered).
// A member that joins later gets a delivery of every task still live.
import type { Member } from '../targets/fleet/types.js';
import { newTaskId, type Delivery, type DeliveryOutcome, type Settlement, type Task } from '../task.js';

export interface Ended {
  parent: Task;
  how: Settlement;
}

export interface Fanout {
  /**
   * A fleet's task comes in: the children to queue, one per member it still lacks; or,
   * when every member has it already (journaled before a restart), how it ended. With
   * no member at all it waits for one.
   */
  add(parent: Task, members: readonly Member[]): { children: Task[]; ended?: Ended };
  /** Members joined (or came back as new containers): the children the live tasks of `target` now lack. */
  joined(target: string, members: readonly Member[]): Task[];
  /** The live children going to one member (they end when it leaves). */
  childrenOf(target: string, member: string): Task[];
  parentOf(child: Task): Task | undefined;
  /** The member incarnation a child was made for (journaled with its end). */
  memberIdOf(child: Task): string | undefined;
  /** A child's status changed: the parent's delivery follows; answers the parent's new status if it changed. */
  follow(child: Task): Task['status'] | undefined;
  /** A child ended; answers its parent and how, when it was the parent's last delivery. */
  ended(child: Task, outcome: DeliveryOutcome): Ended | undefined;
  /** Live parents (the queue's depth counts them, not children). */
  readonly size: number;
}

interface Parent {
  task: Task;
  /** Live children by member name. */
  children: Map<string, Task>;
}

export function createFanout(): Fanout {
  const parents = new Map<string, Parent>();
  const memberIds = new Map<string, string>();

  // Members a parent still lacks, within its pinned ones: not reached yet, or reached in
  // an earlier incarnation (a re-created container has a fresh filesystem). A failed
  // delivery has its own dead-letter entry; a superseded one, a newer file to bring.
  const lacking = (p: Parent, members: readonly Member[]) =>
    members.filter((m) => {
      if ((p.task.members && !p.task.members.includes(m.name)) || p.children.has(m.name)) return false;
      const reached = p.task.delivered?.find((d) => d.container === m.name && d.outcome !== 'gone');
      if (!reached) return true;
      return reached.outcome === 'done' && reached.memberId !== undefined && reached.memberId !== m.id;
    });

  const spawn = (p: Parent, members: readonly Member[]): Task[] =>
    lacking(p, members).map((member) => {
      const { deliveries: _d, status: _s, attempts: _a, error: _e, supersededBy: _b, delivered: _r, ...record } = p.task;
      const child: Task = { ...record, id: newTaskId(), member: member.name, parent: p.task.id, status: 'queued', attempts: 0, updatedAt: new Date().toISOString() };
      p.children.set(member.name, child);
      memberIds.set(child.id, member.id);
      setDelivery(p.task, { container: member.name, status: 'queued', attempts: 0 });
      return child;
    });

  return {
    add(task, members) {
      task.deliveries = (task.delivered ?? []).map((d) => ({ container: d.container, status: d.outcome === 'failed' ? 'failed' : d.outcome === 'done' ? 'done' : d.outcome, attempts: 0 }));
      const p: Parent = { task, children: new Map() };
      parents.set(task.id, p);
      const children = spawn(p, members);
      if (children.length > 0 || members.length === 0) return { children };
      parents.delete(task.id);
      return { children, ended: { parent: task, how: parentOutcome(task.deliveries) } };
    },
    joined(target, members) {
      return [...parents.values()].filter((p) => p.task.target === target).flatMap((p) => spawn(p, members));
    },
    childrenOf(target, member) {
      return [...parents.values()].flatMap((p) => (p.task.target === target ? [p.children.get(member)].filter((c): c is Task => c !== undefined) : []));
    },
    parentOf: (child) => (child.parent === undefined ? undefined : parents.get(child.parent)?.task),
    memberIdOf: (child) => memberIds.get(child.id),
    follow(child) {
      const p = child.parent === undefined ? undefined : parents.get(child.parent);
      if (!p || p.children.get(child.member ?? '') !== child) return undefined;
      setDelivery(p.task, { container: child.member as string, status: child.status, attempts: child.attempts, ...(child.error ? { error: child.error } : {}) });
      const status = liveStatus(p.task);
      return status === p.task.status ? undefined : status;
    },
    ended(child, outcome) {
      const memberId = memberIds.get(child.id);
      memberIds.delete(child.id);
      const p = child.parent === undefined ? undefined : parents.get(child.parent);
      if (!p || p.children.get(child.member ?? '') !== child) return undefined;
      const container = child.member as string;
      p.children.delete(container);
      const others = (p.task.delivered ?? []).filter((d) => d.container !== container);
      p.task.delivered = [...others, { container, ...(memberId ? { memberId } : {}), outcome }];
      const status = outcome === 'done' ? 'done' : outcome === 'failed' ? 'failed' : outcome;
      setDelivery(p.task, { container: child.member as string, status, attempts: child.attempts, ...(child.error ? { error: child.error } : {}) });
      if (p.children.size > 0) return undefined;
      parents.delete(p.task.id);
      return { parent: p.task, how: parentOutcome(p.task.deliveries ?? []) };
    },
    get size() {
      return parents.size;
    },
  };
}

function setDelivery(task: Task, delivery: Delivery): void {
  const others = (task.deliveries ?? []).filter((d) => d.container !== delivery.container);
  task.deliveries = [...others, delivery].sort((a, b) => a.container.localeCompare(b.container));
}

// While deliveries run: pushing if one is, retrying if one waits to retry, else queued.
function liveStatus(task: Task): Task['status'] {
  const statuses = new Set((task.deliveries ?? []).map((d) => d.status));
  if (statuses.has('pushing')) return 'pushing';
  if (statuses.has('retrying')) return 'retrying';
  return 'queued';
}

// A parent with no delivery left: failed if one failed for good, superseded if every
// one was replaced by a newer file, done otherwise (a member that left has nothing to get).
function parentOutcome(deliveries: readonly Delivery[]): Settlement {
  if (deliveries.some((d) => d.status === 'failed')) return 'failed';
  if (deliveries.length > 0 && deliveries.every((d) => d.status === 'superseded')) return 'superseded';
  return 'done';
}
