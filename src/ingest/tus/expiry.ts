// Abandoned resumable uploads go after http.upload_expiry without a byte (SPEC §8).
// Looked for a quarter of the expiry apart (at least every second, at most every ten
// minutes), so an upload outlives its expiry by at most a quarter of it.
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import type { UploadStore } from './store.js';

const MIN_EVERY = 1000;
const MAX_EVERY = 10 * 60_000;

export interface Expiry {
  stop(): void;
}

export function startExpiry(store: UploadStore, logger: Logger): Expiry {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const next = () => {
    if (stopped) return;
    const every = Math.min(MAX_EVERY, Math.max(MIN_EVERY, store.getExpiration() / 4));
    timer = setTimeout(() => void sweep(), every).unref();
  };
  const sweep = async () => {
    await store.deleteExpired().catch((error: unknown) => logger.error({ err: errorMessage(error) }, 'removing expired resumable uploads failed; tried again later'));
    next();
  };
  void sweep();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
