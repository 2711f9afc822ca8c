// Who is in a fleet now (SPEC §7). start() looks once, then the runtime's event stream says
// when to look again: an event only ever means "look again" (a burst of them, one look
// `debounceMs` later), and a look lists the whole fleet and diffs it against the last one,
// which is cheap and always right. A slow periodic look is the safety net for anything
// the stream missed; the stream itself is reconnected when it ends (follow.ts).
// An event can come before the list shows it: Docker says `die` before its list says the
// container stopped. An event whose look changed nothing is looked at again a little
// later, twice (RECHECKS_MS).
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
const RECHECKS_MS = [150, 1_000];

export function createMembership(fleet: Fleet, options: MembershipOptions): Membership {
  const { logger, debounceMs, resyncMs, readyMs, backoff } = { ...DEFAULTS, ...options };
  const discovery = createDiscovery(fleet);
  const listeners: ((change: MembershipChange) => void)[] = [];
  const closer = new AbortController();
  let members: readonly Member[] = [];
  let follower: Follower | undefined;
  let outage = false;
  let debounce: NodeJS.Timeout | undefined;
  let recheck: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let version = 0; // one more at each change
  const looks = coalesced(look);

  async function look(): Promise<void> {
    let next: Member[];
    try {
      next = await discovery.list(AbortSignal.any([closer.signal, answerWithin(LIST_TIMEOUT_MS, discovery.cli.command)]));
    } catch (error) {
      if (!closer.signal.aborted) trouble(error, 'could not list its containers');
      return;
    }
    if (follower?.connected) recovered();
    const change = diffMembers(members, next);
    if (!change) return;
    members = next;
    version += 1;
    tell(change);
  }

  async function lookAfterEvent(attempt = 0): Promise<void> {
    const before = version;
    await looks();
    const delayMs = RECHECKS_MS[attempt];
    if (version !== before || delayMs === undefined || closer.signal.aborted) return;
    clearTimeout(recheck);
    recheck = setTimeout(() => void lookAfterEvent(attempt + 1), delayMs);
  }

  // An outage (the stream ended, or a look failed) is logged once, when it starts, and
  // once more when it is over: the stream connected and a look that worked.
  function trouble(error: unknown, what: string): void {
    if (outage) return;
    outage = true;
    const fields = isStevedoreError(error) ? { code: error.code, message: error.message } : { message: errorMessage(error) };
    logger.warn({ error: fields }, `fleet: ${what}; members stay as last seen, and are not followed until the runtime answers again`);
  }

  function recovered(): void {
    if (!outage) return;
    outage = false;
    logger.info('fleet: following its members again');
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
      void lookAfterEvent();
    }, debounceMs);
  }

  return {
    async start() {
      follower = follow(discovery, {
        signal: closer.signal,
        readyMs,
        backoff,
        onEvent: poke,
        onConnected: () => void looks(),
        onEnded: (error) => trouble(error, 'the runtime\'s event stream ended'),
      });
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
      clearTimeout(recheck);
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
