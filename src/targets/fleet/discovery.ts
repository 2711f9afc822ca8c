// How a runtime's CLI answers which containers a fleet's selector matches, and which
// call streams its events. One dialect per CLI family: Docker and Podman, Incus and LXD.
import { dockerDiscovery } from './docker.js';
import { incusDiscovery } from './incus.js';
import type { Discovery, Fleet } from './types.js';

export type { Discovery, Fleet } from './types.js';

export function createDiscovery(fleet: Fleet): Discovery {
  const { runtime, select } = fleet;
  if (runtime === 'docker' || runtime === 'podman') return dockerDiscovery({ runtime, host: fleet.host, select });
  return incusDiscovery({ runtime, remote: fleet.remote, project: fleet.project, select });
}
