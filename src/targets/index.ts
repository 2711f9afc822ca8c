// Builds the adapter for each configured target.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config/schema.js';
import { StevedoreError } from '../errors.js';
import { createContainerTarget } from './container/container.js';
import { dockerRuntime } from './container/docker.js';
import { incusRuntime } from './container/incus.js';
import { describeSelector } from './fleet/selector.js';
import type { Runtime } from './container/runtime.js';
import type { StagingLedger } from './ledger.js';
import { createLocalTarget } from './local.js';
import type { Target } from './target.js';
import type { FleetConfig } from '../config/schema.js';
import { createMembership } from './fleet/membership.js';
import type { Membership } from './fleet/types.js';

export { createStagingLedger, type StagingLedger } from './ledger.js';

/**
 * `ledger`: where targets note a batch's staging while it runs (the agent's; see
 * ledger.ts). `member`: the container of a fleet's member (a fleet has no other).
 */
export function createTarget(name: string, config: Readonly<TargetConfig>, logger?: Logger, ledger?: StagingLedger, member?: string): Target {
  if (config.runtime === 'local') return createLocalTarget({ name, root: config.root, ...(ledger ? { ledger } : {}) });
  const container = member ?? config.container;
  if (container === undefined) throw new StevedoreError('NOT_SUPPORTED', `target "${name}" is a fleet (select): push into one of its members`);
  const runtime = runtimeFor(config, container);
  if (!onPath(runtime.command)) {
    throw new StevedoreError('RUNTIME_MISSING', `target "${name}": runtime ${config.runtime} needs the "${runtime.command}" command, which is not on PATH (is ${config.runtime} installed?)`);
  }
  // A member's staging notes are its own: another member's are not "a place this target no longer points at".
  return createContainerTarget(member === undefined ? name : `${name}/${member}`, runtime, logger, ledger);
}

/**
 * Follows a fleet's members on its runtime (fleet/membership.ts). A runtime whose CLI is
 * not on PATH stops the start, as for a target of one container.
 */
export function followFleet(name: string, config: FleetConfig, logger: Logger): Membership {
  const command = config.runtime === 'lxd' ? 'lxc' : config.runtime;
  if (!onPath(command)) {
    throw new StevedoreError('RUNTIME_MISSING', `target "${name}": runtime ${config.runtime} needs the "${command}" command, which is not on PATH (is ${config.runtime} installed?)`);
  }
  const { runtime, select } = config;
  const where = config.runtime === 'incus' || config.runtime === 'lxd' ? { remote: config.remote, project: config.project } : { host: 'host' in config ? config.host : undefined };
  return createMembership({ runtime, select, ...where }, { logger: logger.child({ target: name }) });
}

/** A container target's runtime, for its one container or one member of its fleet, on its daemon or remote. */
function runtimeFor(config: Readonly<Exclude<TargetConfig, { runtime: 'local' }>>, container: string): Runtime {
  if (config.runtime === 'incus' || config.runtime === 'lxd') return incusRuntime({ runtime: config.runtime, container, remote: config.remote, project: config.project });
  return dockerRuntime({ runtime: config.runtime, container, host: 'host' in config ? config.host : undefined });
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The X-Container-Name a legacy client uses for a target: its container, or a local target's name (a fleet has none: config refuses it). */
export const containerName = (name: string, config: Readonly<TargetConfig>): string =>
  config.runtime === 'local' ? name : (config.container ?? '');

/** Where a target's files go, for people: a root, a container, or a fleet's selector. */
export function describeTarget(config: Readonly<TargetConfig>): string {
  if (config.runtime === 'local') return config.root;
  const on = 'remote' in config && config.remote ? `${config.remote}:` : '';
  const via = 'host' in config && config.host ? ` on ${config.host}` : '';
  if (config.container !== undefined) return `${on}${config.container}${via}`;
  return `fleet ${on}[${describeSelector(config.select ?? { labels: {} })}]${via}`;
}
