// What the operator endpoints do (endpoints.ts answers them over HTTP): metrics, the
// status, and the dead-letter store's list, replay and purge on the running agent.
import type { Logger } from 'pino';
import { StevedoreError } from '../errors.js';
import type { Config } from '../config/load.js';
import { isLoopback } from '../config/listen.js';
import type { Operations } from './endpoints.js';
import type { ReceivingStatus } from '../ingest/receiving.js';
import type { FleetStatus } from '../targets/fleet/fleets.js';
import type { UploadsStatus } from '../ingest/tus/store.js';
import type { Watch } from '../ingest/watch/watch.js';
import type { Registry } from '../queue/registry.js';
import type { Scheduler } from '../queue/scheduler.js';
import { newTask, taskJson } from '../task.js';
import { deadEntryJson, type DeadLetter } from '../spool/dead-letter.js';
import type { Journal } from '../spool/journal.js';
import { replayAll } from '../spool/replay.js';
import type { Spool } from '../spool/spool.js';
import type { EventStreams } from './events.js';
import type { Metrics } from './metrics.js';
import { buildStatus } from './status.js';

export interface OperationsDeps {
  config(): Config;
  watches(): readonly Watch[];
  scheduler: Scheduler;
  registry: Registry;
  spool: Spool;
  journal: Journal;
  deadLetter: DeadLetter;
  metrics: Metrics;
  deadLetterCounts: DeadLetterCounts;
  /** The HTTP bodies being received (GET /status); undefined without a listener. */
  receiving(): ReceivingStatus | undefined;
  fleets(): FleetStatus[];
  /** Resumable uploads not finished (GET /status); undefined without a listener. */
  uploads(): UploadsStatus | undefined;
  /** GET /events. */
  events: EventStreams;
  logger: Logger;
  startedAt: Date;
}

export function createOperations(deps: OperationsDeps): Operations {
  const { scheduler, registry, spool, journal, deadLetter, metrics, deadLetterCounts: counts, logger } = deps;
  // Changes to the store run one at a time: two retries of one entry must not both journal it.
  let changing: Promise<unknown> = Promise.resolve();
  const serially = <T>(change: () => Promise<T>): Promise<T> => {
    const next = changing.then(change, change);
    changing = next.catch(() => undefined);
    return next;
  };
  return {
    get token() {
      return deps.config().http?.admin_token;
    },
    get allowReads() {
      const http = deps.config().http;
      return http?.admin_token !== undefined || http?.allow_anonymous === true || isLoopback(http?.listen ?? '');
    },
    get allowChanges() {
      const http = deps.config().http;
      return http?.admin_token !== undefined || isLoopback(http?.listen ?? '');
    },
    events: (req, res) => deps.events.serve(req, res),
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
    status: () => buildStatus({ config: deps.config(), scheduler, registry, watches: deps.watches(), spool, deadLetters: counts.get, receiving: deps.receiving, fleets: deps.fleets, uploads: deps.uploads, startedAt: deps.startedAt }),
    deadLetter: {
      list: async () => (await deadLetter.list()).map(deadEntryJson),
      retry: (id) =>
        serially(async () => {
          const entries = id === undefined ? await deadLetter.list() : [await deadLetter.get(id)];
          const tasks: Record<string, unknown>[] = [];
          const known = (target: string) => Object.hasOwn(deps.config().targets, target);
          const { skipped } = await replayAll(entries, { spool, journal, deadLetter, known }, (record) => {
            const task = newTask(record);
            scheduler.enqueue(task);
            logger.info({ taskId: task.id, target: task.target, dest: task.dest }, 'dead-letter entry queued again');
            tasks.push(taskJson(task));
          });
          counts.forget();
          if (id === undefined) return { tasks, skipped };
          if (skipped[0]) throw new StevedoreError('BAD_REQUEST', skipped[0].reason);
          return tasks[0];
        }),
      purge: (id) =>
        serially(async () => {
          await deadLetter.remove(id);
          counts.forget();
          logger.info({ id }, 'dead-letter entry purged');
        }),
    },
  };
}

export interface DeadLetterCounts {
  get(): Promise<ReadonlyMap<string, number>>;
  /** Read again at the next get(): an entry came or went. */
  forget(): void;
}

/** Dead-letter entries per target, read from disk at most every few seconds (each scrape asks). */
export function cachedCounts(deadLetter: DeadLetter, maxAgeMs = 5000): DeadLetterCounts {
  let cached: { at: number; counts: Promise<Map<string, number>> } | undefined;
  return {
    get() {
      if (!cached || Date.now() - cached.at > maxAgeMs) {
        const counts = deadLetter.list().then((list) => list.reduce((map, entry) => map.set(entry.target, (map.get(entry.target) ?? 0) + 1), new Map<string, number>()));
        cached = { at: Date.now(), counts };
        counts.catch(() => (cached = undefined));
      }
      return cached.counts;
    },
    forget() {
      cached = undefined;
    },
  };
}
