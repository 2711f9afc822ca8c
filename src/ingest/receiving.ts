// The bodies being received (issue 10, item 8). Each holds a queue slot from before its
// first byte until it is queued, so slow bodies could hold the whole queue: 20 trickling
// a byte every 3 s once locked out token-holders and watched folders. Three bounds:
// at most `max_receiving` bodies at once, and never more than half of queue.capacity
// (the other half stays for watched folders and bodies already in); routes without a
// token get half of that (an anonymous flood leaves room for token-holders); and a body
// slower than `min_rate` is cut with 408, so a held place costs bandwidth.
import type { IncomingMessage } from 'node:http';
import { StevedoreError } from '../errors.js';

export interface ReceivingLimits {
  /** http.max_receiving */
  maxReceiving: number;
  /** queue.capacity */
  capacity: number;
  /** http.min_rate in bytes per second; 0 turns the check off. */
  minRate: number;
  /** http.idle_timeout: a rate window is 10 s, or this when shorter. */
  idleTimeout: number;
}

export interface Receiving {
  /** The task id announced to the client (103 Early Hints) before the body ended. */
  id?: string;
  route: string;
  target: string;
  dest: string;
  /** No token guards its route: it counts in the anonymous share. */
  anonymous: boolean;
  /** Content-Length, when the client sent one. */
  expected?: number;
  received: number;
  createdAt: string;
}

export interface Body {
  readonly entry: Receiving;
  /** Aborted with 408 REQUEST_TIMEOUT when the body arrives slower than min_rate. */
  readonly signal: AbortSignal;
  /** Counts the bytes and meters their rate. Call right after the body's reader is attached (a 'data' listener would start it). */
  read(req: IncomingMessage): void;
  /** The body is in, or never will be: its place is free. Idempotent. */
  leave(): void;
}

export interface ReceivingStatus {
  bodies: number;
  bytes: number;
  limit: number;
  anonymous: number;
  anonymous_limit: number;
  by_route: { route: string; bodies: number; bytes: number }[];
}

export interface Bodies {
  /** Takes a place for a body, or throws 503 TOO_MANY_UPLOADS. */
  enter(entry: Omit<Receiving, 'received' | 'createdAt'>): Body;
  /** An announced body, by its task id (GET /tasks/<id>). */
  get(id: string): Receiving | undefined;
  status(): ReceivingStatus;
  /** Why new bodies are refused right now (GET /readyz), or nothing. */
  problems(): string[];
}

const WINDOW_MS = 10_000;

export function createBodies({ maxReceiving, capacity, minRate, idleTimeout }: ReceivingLimits): Bodies {
  const limit = Math.max(1, Math.min(maxReceiving, Math.ceil(capacity / 2)));
  const anonymousLimit = Math.ceil(limit / 2);
  const live = new Set<Receiving>();
  const anonymousCount = () => [...live].filter((entry) => entry.anonymous).length;
  const windowMs = Math.min(WINDOW_MS, idleTimeout);
  return {
    enter(fields) {
      if (live.size >= limit) throw busy(`${live.size} bodies are being received, the most at once (http.max_receiving, at most half of queue.capacity)`);
      if (fields.anonymous && anonymousCount() >= anonymousLimit) throw busy(`${anonymousLimit} bodies are being received on routes without a token, their share of http.max_receiving`);
      const entry: Receiving = { ...fields, received: 0, createdAt: new Date().toISOString() };
      live.add(entry);
      return meteredBody(entry, { minRate, windowMs }, () => live.delete(entry));
    },
    get: (id) => [...live].find((entry) => entry.id === id),
    status() {
      const routes = new Map<string, { route: string; bodies: number; bytes: number }>();
      for (const { route, received } of live) {
        const sum = routes.get(route) ?? { route, bodies: 0, bytes: 0 };
        routes.set(route, { route, bodies: sum.bodies + 1, bytes: sum.bytes + received });
      }
      const bytes = [...live].reduce((total, entry) => total + entry.received, 0);
      return { bodies: live.size, bytes, limit, anonymous: anonymousCount(), anonymous_limit: anonymousLimit, by_route: [...routes.values()] };
    },
    problems: () => (live.size >= limit ? [`${live.size} bodies are being received, the most at once (http.max_receiving): uploads get 503`] : []),
  };
}

const busy = (message: string) => new StevedoreError('TOO_MANY_UPLOADS', `${message}; retry later`);

// The rate is judged once per window, only over windows in which the agent waited for
// the client: a body the agent paused (its disk was slower) is not the client's fault.
// The judgement runs after the loop's poll phase, so bytes that arrived while the
// process was stalled are counted first.
function meteredBody(entry: Receiving, { minRate, windowMs }: { minRate: number; windowMs: number }, release: () => void): Body {
  const controller = new AbortController();
  let stop = () => {};
  let left = false;
  return {
    entry,
    signal: controller.signal,
    read(req) {
      const onData = (chunk: Buffer) => (entry.received += chunk.length);
      let paused = false;
      const onPause = () => (paused = true);
      let from = entry.received;
      const judge = () => {
        const got = entry.received - from;
        if (minRate > 0 && !paused && !req.isPaused() && got < (minRate * windowMs) / 1000) {
          const rate = Math.round((got * 1000) / windowMs);
          controller.abort(new StevedoreError('REQUEST_TIMEOUT', `the body arrived at ${rate} bytes/s over ${windowMs / 1000} s, slower than http.min_rate (${minRate} bytes/s)`));
        }
        from = entry.received;
        paused = false;
      };
      const timer = setInterval(() => setImmediate(judge), windowMs).unref();
      req.on('data', onData).on('pause', onPause);
      stop = () => {
        clearInterval(timer);
        req.off('data', onData).off('pause', onPause);
      };
    },
    leave() {
      if (left) return;
      left = true;
      stop();
      release();
    },
  };
}
