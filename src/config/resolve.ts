// Turns a route's or watch's overrides plus `defaults` into the options a task carries.
import type { FileOptions } from '../task.js';
import type { Config } from './load.js';

interface Overrides {
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly mode?: number;
  readonly dir_mode?: number;
  readonly retry?: { readonly attempts?: number; readonly initial_delay?: number; readonly max_delay?: number };
  readonly push_timeout?: number;
  readonly exec?: readonly string[] | undefined;
  readonly retain?: boolean;
}

/** `root`: the configured container directory the files land under (route, watch or legacy `dest`). */
export function fileOptionsFor(defaults: Config['defaults'], overrides: Overrides = {}, root?: string): FileOptions {
  const retry = { ...defaults.retry, ...overrides.retry };
  const owner = overrides.owner ?? defaults.owner;
  return {
    mode: overrides.mode ?? defaults.mode,
    dirMode: overrides.dir_mode ?? defaults.dir_mode,
    ...(owner ? { owner: { uid: owner.uid, gid: owner.gid } } : {}),
    retry: { attempts: retry.attempts, initialDelay: retry.initial_delay, maxDelay: retry.max_delay },
    pushTimeout: overrides.push_timeout ?? defaults.push_timeout,
    ...(overrides.exec ? { exec: [...overrides.exec] } : {}),
    ...(root ? { root } : {}),
    ...(overrides.retain ? { retain: true } : {}),
  };
}
