// Who is in a fleet now (SPEC §7). start() looks once, then the runtime's event stream says
// when to look again: an event only ever means "look again" (a burst of them, one look
// `debounceMs` later), and a look lists the whole fleet and diffs it against the last one,
// which is cheap and always right. A slow periodic look is the safety net for anything
// the stream missed; the stream itself is reconnected when it ends (follow.ts).
import type { Logger } from 'pino';
import { errorMessage, isStevedoreError } from '../../errors.js';
import { answerWithin } from './answers.js';
import { createDiscovery, type Fleet } from './discovery.js';
import { diffMembers } from './diff.js';
import { follow, type Follower } from './follow.js';
import type { Member, Membership, MembershipChange } from './types.js';

export interface MembershipOptions {
  logger: Logger;
  /** How long a burst of events is gathered into one look. */
  debounceMs?: number;
  /** The safety net: a look this often whatever the stream says. */
  resyncMs?: number;
  /** How long the stream must stay up to count as connected (follow.ts). */
  readyMs?: number;
  backoff?: { initialMs: number; maxMs: number };
}

const DEFAULTS = { debounceMs: 10, resyncMs: 60_000, readyMs: 250, backoff: { initialMs: 500, maxMs: 30_000 } };
// A look that takes longer is given up (a hung daemon); the next event or resync looks again.
const LIST_TIMEOUT_MS = 30_000;

export function createMembership(fleet: Fleet, options: MembershipOptions): Membership {
  const { logger, debounceMs, resyncMs, readyMs, backoff } = { ...DEFAULTS, ...options };
  const discovery = createDiscovery(fleet);
  const listeners: ((change: MembershipChange) => void)[] = [];
  const closer = new AbortController();
  let members: readonly Member[] = [];
  let follower: Follower | undefined;
  let failing = false;
  let debounce: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  const looks = coalesced(look);

  async function look(): Promise<void> {
    let next: Member[];
    try {
      next = await discovery.list(AbortSignal.any([closer.signal, answerWithin(LIST_TIMEOUT_MS, discovery.cli.command)]));
    } catch (error) {
      if (!closer.signal.aborted) listFailed(error);
      return;
    }
    if (failing) logger.info('fleet: listing its containers works again');
    failing = false;
    const change = diffMembers(members, next);
    members = next;
    if (change) tell(change);
  }

  // Logged once until a look works again; while the stream is down its outage says it all.
  function listFailed(error: unknown): void {
    if (failing || !follower?.connected) return;
    failing = true;
    const fields = isStevedoreError(error) ? { code: error.code, message: error.message } : { message: errorMessage(error) };
    logger.warn({ error: fields }, 'fleet: could not list its containers; members stay as last seen');
  }

  function tell(change: MembershipChange): void {
    logger.info({ joined: change.joined.map((m) => m.name), left: change.left, started: change.started.map((m) => m.name), stopped: change.stopped.map((m) => m.name) }, 'fleet: members changed');
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        logger.error({ err: error }, 'fleet: a membership listener failed');
      }
    }
  }

  function poke(): void {
    if (debounce !== undefined || closer.signal.aborted) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      void looks();
    }, debounceMs);
  }

  return {
    async start() {
      follower = follow(discovery, { logger, signal: closer.signal, readyMs, backoff, onEvent: poke, onConnected: () => void looks() });
      resyncTimer = setInterval(() => void looks(), resyncMs);
      await looks();
    },
    members: () => members,
    onChange(listener) {
      listeners.push(listener);
    },
    get following() {
      return follower?.connected ?? false;
    },
    resync: looks,
    async close() {
      closer.abort();
      clearTimeout(debounce);
      clearInterval(resyncTimer);
      await follower?.done;
      await looks.idle();
    },
  };
}

/**
 * One look at a time: a call while one runs asks for one more after it, and settles when
 * that one has, so that a caller always sees a look that started after its call.
 */
function coalesced(run: () => Promise<void>): (() => Promise<void>) & { idle(): Promise<void> } {
  let running: Promise<void> | undefined;
  let again = false;
  const call = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await run();
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  return Object.assign(call, { idle: async () => void (await running) });
}
