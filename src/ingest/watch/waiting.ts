// Watched files waiting to be looked at again. Each one alone, with backoff: no queue
// slot yet, a read that failed, a file that changed while it was copied, a pushed file
// whose removal was put off. And those waiting for room in the spool (or for the spool
// itself): said when the first one starts waiting and when none is left, not per file
// and retry, and each one staged wakes a few of the others at once.
import type { Logger } from 'pino';
import type { StevedoreError } from '../../errors.js';
import { backoffDelay } from '../../queue/backoff.js';

export interface Waiting {
  /** Looks at `file` again after its next backoff (about 1 s, doubling, up to 30 s). */
  later(file: string): void;
  /** `file` waits no more: staged, gone, or not to be pushed. */
  forget(file: string): void;
  /** `file` found no room in the spool (or no spool): `error` says why. */
  noRoom(file: string, error: StevedoreError): void;
  /** `file` was staged (true: there is room again) or went (false). */
  hadRoom(file: string, staged: boolean): void;
  /** Files waiting for room, and not being looked at right now. */
  readonly resting: number;
  close(): void;
}

export interface WaitingOptions {
  log: Logger;
  /** Looks at a file again. */
  touch(file: string): void;
  /** How many files waiting for room one staged file wakes. */
  wake: number;
}

const BACKOFF = { initialDelay: 1000, maxDelay: 30_000 };

export function createWaiting({ log, touch, wake }: WaitingOptions): Waiting {
  // `timer` is unset once it fired: the file is being looked at again.
  const retries = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>();
  const waitingForRoom = new Set<string>();
  let closed = false;

  const forget = (file: string) => {
    clearTimeout(retries.get(file)?.timer);
    retries.delete(file);
  };

  return {
    later(file) {
      if (closed) return;
      const retry: { attempt: number; timer?: NodeJS.Timeout } = { attempt: (retries.get(file)?.attempt ?? 0) + 1 };
      retry.timer = setTimeout(() => {
        retry.timer = undefined;
        if (!closed) touch(file);
      }, backoffDelay(retry.attempt, BACKOFF)).unref();
      retries.set(file, retry);
    },
    forget,
    noRoom(file, error) {
      if (waitingForRoom.size === 0) log.warn({ ...error.details }, waitsWhy(error));
      waitingForRoom.add(file);
    },
    hadRoom(file, staged) {
      if (!waitingForRoom.delete(file)) return;
      if (waitingForRoom.size === 0) return void log.info('no watched file waits for room in the spool any more');
      if (!staged) return;
      // Room came back: the next ones need not wait out their backoff (up to 30 s).
      for (const next of [...waitingForRoom].slice(0, wake)) {
        forget(next);
        touch(next);
      }
    },
    get resting() {
      return [...waitingForRoom].filter((file) => retries.get(file)?.timer !== undefined).length;
    },
    close() {
      closed = true;
      for (const file of [...retries.keys()]) forget(file);
    },
  };
}

// Said once, when the first watched file has to wait for the spool.
const waitsWhy = (error: StevedoreError) =>
  error.code === 'SPOOL_UNAVAILABLE'
    ? `the spool cannot take watched files (${String(error.details.problem)}); they wait in the folder and are staged once it can`
    : `no room in the spool for watched files: ${error.message}; they wait in the folder and are staged once there is room`;
