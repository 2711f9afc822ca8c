// Builds the adapter for each configured target.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config/schema.js';
import { StevedoreError } from '../errors.js';
import { createContainerTarget } from './container/container.js';
import { dockerRuntime } from './container/docker.js';
import { incusRuntime } from './container/incus.js';
import type { Runtime } from './container/runtime.js';
import type { StagingLedger } from './ledger.js';
import { createLocalTarget } from './local.js';
import type { Target } from './target.js';

export { createStagingLedger, type StagingLedger } from './ledger.js';

/** `ledger`: where targets note a batch's staging while it runs (the agent's; see ledger.ts). */
export function createTarget(name: string, config: Readonly<TargetConfig>, logger?: Logger, ledger?: StagingLedger): Target {
  if (config.runtime === 'local') return createLocalTarget({ name, root: config.root, ...(ledger ? { ledger } : {}) });
  const runtime = runtimeFor(config);
  if (!onPath(runtime.command)) {
    throw new StevedoreError('RUNTIME_MISSING', `target "${name}": runtime ${config.runtime} needs the "${runtime.command}" command, which is not on PATH (is ${config.runtime} installed?)`);
  }
  return createContainerTarget(name, runtime, logger, ledger);
}

function runtimeFor(config: Readonly<Exclude<TargetConfig, { runtime: 'local' }>>): Runtime {
  const { runtime, container } = config;
  if (runtime === 'docker' || runtime === 'podman') return dockerRuntime({ runtime, container });
  return incusRuntime({ runtime, container, project: 'project' in config ? config.project : undefined });
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

/** The X-Container-Name a legacy client uses for a target: its container, or a local target's name. */
export const containerName = (name: string, config: Readonly<TargetConfig>): string =>
  config.runtime === 'local' ? name : config.container;
