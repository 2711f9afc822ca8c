// Builds the adapter for each configured target.
import type { TargetConfig } from '../config/schema.js';
import { StevedoreError } from '../errors.js';
import { createLocalTarget } from './local.js';
import type { Target } from './target.js';

export function createTarget(name: string, config: Readonly<TargetConfig>): Target {
  if (config.runtime === 'local') return createLocalTarget({ name, root: config.root });
  throw new StevedoreError('NOT_SUPPORTED', `target "${name}": runtime ${config.runtime} is not supported by this version yet (only local)`);
}

/** The X-Container-Name a legacy client uses for a target: its container, or a local target's name. */
export const containerName = (name: string, config: Readonly<TargetConfig>): string =>
  config.runtime === 'local' ? name : config.container;
