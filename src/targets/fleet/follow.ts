// Keeps a fleet's event stream connected: runs it, and when it ends (the daemon stopped,
// restarted, or the remote cannot be reached) runs it again after a backoff. The CLIs
// print nothing when they connect: a stream that has stayed up `readyMs` counts as
// connected (a daemon that is down ends it within milliseconds), and then the fleet is
// looked at again, which covers whatever happened before it was.
import type { StevedoreError } from '../../errors.js';
import type { Discovery } from './types.js';
import { runStream } from './stream.js';

export interface FollowOptions {
  signal: AbortSignal;
  readyMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** An event that may change who the members are. */
  onEvent(): void;
  /** The stream is connected: look at the fleet again. */
  onConnected(): void;
  /** The stream ended, for this reason (not called when the signal stopped it). */
  onEnded(error: StevedoreError): void;
}

export interface Follower {
  /** True while the stream is connected. */
  readonly connected: boolean;
  /** Settles once the signal has stopped the stream for good. */
  done: Promise<void>;
}

export function follow(discovery: Discovery, options: FollowOptions): Follower {
  const { signal, backoff } = options;
  let connected = false;
  const onLine = (line: string) => {
    if (discovery.matters(line)) options.onEvent();
  };

  // One run of the stream, from its start to its end.
  async function once(): Promise<{ error: StevedoreError; wasConnected: boolean }> {
    let over = false;
    const ended = runStream(discovery.cli, discovery.events, { signal, onLine }).finally(() => void (over = true));
    await Promise.race([ended, pause(options.readyMs, signal)]);
    const wasConnected = !over && !signal.aborted;
    if (wasConnected) {
      connected = true;
      options.onConnected();
    }
    const error = await ended;
    connected = false;
    return { error, wasConnected };
  }

  const done = (async () => {
    let delayMs = backoff.initialMs;
    while (!signal.aborted) {
      const { error, wasConnected } = await once();
      if (signal.aborted) break;
      if (wasConnected) delayMs = backoff.initialMs;
      options.onEnded(error);
      await pause(delayMs, signal);
      delayMs = Math.min(delayMs * 2, backoff.maxMs);
    }
  })();

  return {
    get connected() {
      return connected;
    },
    done,
  };
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    signal.addEventListener('abort', finish, { once: true });
  });
}
