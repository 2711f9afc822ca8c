// GET /status (and `stevedore status --json`): what an operator asks first. Queue,
// targets (up or down, since when, last error), watches, recent failures, dead-letter
// and spool use.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load.js';
import type { FleetStatus } from '../targets/fleet/fleets.js';
import { describeTarget } from '../targets/index.js';
import type { ReceivingStatus } from '../ingest/receiving.js';
import type { Watch } from '../ingest/watch/watch.js';
import type { Registry } from '../queue/registry.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Spool } from '../spool/spool.js';
import type { UploadsStatus } from '../ingest/tus/store.js';

export interface StatusSources {
  config: Config;
  scheduler: Scheduler;
  registry: Registry;
  watches: readonly Watch[];
  spool: Spool;
  deadLetters(): Promise<ReadonlyMap<string, number>>;
  /** The HTTP bodies being received; undefined without a listener. */
  receiving(): ReceivingStatus | undefined;
  /** The fleets' members (SPEC §7). */
  fleets(): FleetStatus[];
  /** Resumable uploads not finished yet; undefined without a listener. */
  uploads(): UploadsStatus | undefined;
  startedAt: Date;
}

const RECENT_FAILURES = 20;

export async function buildStatus({ config, scheduler, registry, watches, spool, deadLetters, receiving, fleets, uploads, startedAt }: StatusSources) {
  const states = new Map(scheduler.targetStates().map((state) => [state.name, state]));
  const dead = await deadLetters();
  const [freeBytes, usage] = await Promise.all([spool.freeBytes().catch(() => undefined), spoolUsage(spool.dir)]);
  const bodies = receiving();
  const resumable = uploads();
  return {
    started_at: startedAt.toISOString(),
    uptime_seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    queue: { depth: scheduler.size, capacity: config.queue.capacity, in_flight: scheduler.inFlight },
    ...(bodies ? { receiving: bodies } : {}),
    ...(resumable ? { uploads: resumable } : {}),
    targets: Object.entries(config.targets).map(([name, target]) => {
      const state = states.get(name);
      return {
        name,
        runtime: target.runtime,
        where: describeTarget(target),
        up: state?.up ?? true,
        ...(state?.since ? { since: state.since } : {}),
        ...(state?.lastError ? { last_error: state.lastError } : {}),
        queued: state?.queued ?? 0,
        pushing: state?.pushing ?? 0,
        dead_letter: dead.get(name) ?? 0,
      };
    }),
    fleets: fleets().map((fleet) => ({
      name: fleet.name,
      following: fleet.following,
      members: fleet.members.map((member) => {
        const state = states.get(`${fleet.name}/${member.name}`);
        return {
          name: member.name,
          id: member.id,
          running: member.running,
          ready: member.ready,
          up: state?.up ?? true,
          ...(state?.lastError ? { last_error: state.lastError } : {}),
          queued: state?.queued ?? 0,
          pushing: state?.pushing ?? 0,
        };
      }),
    })),
    watches: watches.map((watch) => watch.status()),
    recent_failures: registry.recentFailures(RECENT_FAILURES).map((task) => ({
      id: task.id,
      target: task.target,
      dest: task.dest,
      code: task.error?.code,
      message: task.error?.message,
      at: task.updatedAt,
    })),
    dead_letter: [...dead.values()].reduce((sum, count) => sum + count, 0),
    spool: { dir: spool.dir, files: usage.files, bytes: usage.bytes, ...(freeBytes === undefined ? {} : { free_bytes: freeBytes }) },
  };
}

export type StatusJson = Awaited<ReturnType<typeof buildStatus>>;

async function spoolUsage(dir: string): Promise<{ files: number; bytes: number }> {
  const names = await readdir(dir).catch(() => []);
  const sizes = await Promise.all(names.map((name) => stat(path.join(dir, name)).then((s) => s.size, () => 0)));
  return { files: names.length, bytes: sizes.reduce((sum, size) => sum + size, 0) };
}
