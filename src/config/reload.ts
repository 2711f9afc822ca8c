// What a reload changes: the plan that turns the running config into the new one.
// Pure, so the agent only applies it. Targets, routes, legacy rules, watches, defaults
// and the log level change in place; what the process was built around (state_dir,
// the listener, queue limits) needs a restart and is said so.
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './load.js';
import { isFleet } from './schema.js';

export interface ReloadPlan {
  /** Targets new or changed: a new adapter for the tasks not yet started. */
  targets: string[];
  /** Targets gone from the config: their queued tasks still finish on the old adapter. */
  removedTargets: string[];
  /**
   * Fleets that would become one container, or go: they run on as they were until a
   * restart. Their tasks are deliveries to members, which a reload would end as "member
   * left" (done, never pushed); recovery at the restart queues them for the new target.
   */
  keptTargets: string[];
  /** Watches to stop: gone, or changed (and started again from `startWatches`). */
  stopWatches: string[];
  startWatches: string[];
  /** Keys whose change needs a restart; the running values stay. */
  needRestart: string[];
}

/** The http keys a reload cannot change: the listener, and the limits it was made with. */
export const RESTART_HTTP_KEYS = ['listen', 'min_free', 'max_body', 'idle_timeout', 'max_receiving', 'min_rate'] as const;

export function planReload(prev: Config, next: Config): ReloadPlan {
  const changed = <T>(a: T, b: T) => !isDeepStrictEqual(a, b);
  const keptTargets = Object.keys(prev.targets).filter((name) => isFleet(prev.targets[name]) && !isFleet(next.targets[name]));
  const kept = (name: string) => keptTargets.includes(name);
  const targets = Object.keys(next.targets).filter((name) => !kept(name) && changed(prev.targets[name], next.targets[name]));
  const removedTargets = Object.keys(prev.targets).filter((name) => !kept(name) && !(name in next.targets));
  // A watch's options come from defaults too: a change there restarts it.
  const watchKey = (config: Config, name: string) => {
    const watch = config.watch.find((w) => w.name === name);
    return watch && { watch, defaults: config.defaults };
  };
  const stopWatches = prev.watch.map((w) => w.name).filter((name) => changed(watchKey(prev, name), watchKey(next, name)));
  const startWatches = next.watch.map((w) => w.name).filter((name) => changed(watchKey(prev, name), watchKey(next, name)));
  const needRestart = [
    prev.state_dir !== next.state_dir && 'state_dir',
    ...RESTART_HTTP_KEYS.map((key) => changed(prev.http?.[key], next.http?.[key]) && `http.${key}`),
    (prev.http === undefined) !== (next.http === undefined) && 'http (added or removed)',
    changed(prev.queue, next.queue) && 'queue',
    changed(prev.log.format, next.log.format) && 'log.format',
    prev.retain_max !== next.retain_max && 'retain_max',
    ...keptTargets.map((name) => `targets.${name} (a fleet becoming one container, or removed)`),
  ].filter((key): key is string => typeof key === 'string');
  return { targets, removedTargets, keptTargets, stopWatches, startWatches, needRestart };
}
