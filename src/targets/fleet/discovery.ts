// How a runtime's CLI answers which containers a fleet's selector matches, and which
// call streams its events. One dialect per CLI family: Docker and Podman, Incus and LXD.
import type { Cli } from '../container/cli.js';
import { dockerDiscovery } from './docker.js';
import { incusDiscovery } from './incus.js';
import type { FleetRuntime, Member, Selector } from './types.js';

export type Fleet = FleetRuntime & { select: Selector };

export interface Discovery {
  /** The CLI every call goes through, with its failure table; the daemon or remote is in each call's arguments. */
  cli: Cli;
  /** The containers the selector matches now, running or not. */
  list(signal: AbortSignal): Promise<Member[]>;
  /** The arguments of the call that prints the runtime's events, one a line, until it ends. */
  events: readonly string[];
  /** Whether an event line may change who the members are (a push's own `exec` does not). */
  matters(line: string): boolean;
}

export function createDiscovery(fleet: Fleet): Discovery {
  const { runtime, select } = fleet;
  if (runtime === 'docker' || runtime === 'podman') return dockerDiscovery({ runtime, host: fleet.host, select });
  return incusDiscovery({ runtime, remote: fleet.remote, project: fleet.project, select });
}
