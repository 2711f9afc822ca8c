// A fleet (SPEC §7): a target that is every container a selector matches, now and later.
// Membership follows the runtime's own event stream; these are the shapes shared by the
// runtimes' discovery (how to list and follow containers), the membership (who is in
// the fleet now), and the queue (one delivery per member).
import type { Cli } from '../container/cli.js';

/** Which containers: every label equal (Incus/LXD: config keys user.<key>), and the name glob. */
export interface Selector {
  labels: Readonly<Record<string, string>>;
  /** A glob on the container's name (picomatch), ANDed with the labels. */
  name?: string | undefined;
}

/** Where a fleet's runtime is reached: its CLI, and the daemon or remote it talks to. */
export interface FleetRuntime {
  runtime: 'incus' | 'lxd' | 'docker' | 'podman';
  /** docker/podman: the daemon URL (else DOCKER_HOST / CONTAINER_HOST). */
  host?: string | undefined;
  /** incus/lxd: a remote added with `incus remote add`. */
  remote?: string | undefined;
  /** incus/lxd. */
  project?: string | undefined;
}

/** A container the selector matches now. */
export interface Member {
  /** Its name: what pushes address, and what a member is known by across re-creations. */
  name: string;
  /** This incarnation's id (Docker/Podman: the container id; Incus/LXD: volatile.uuid): a new one under a known name is a new container, with a fresh filesystem. */
  id: string;
  running: boolean;
}

/** What changed in a fleet since the last look. */
export interface MembershipChange {
  /** New members: a name not seen before, or a known name with a new id. */
  joined: Member[];
  /** Names that no longer match (removed, or relabeled). */
  left: string[];
  /** Known members (same id) that were stopped and run now. */
  started: Member[];
  /** Known members that stopped (they still match: their deliveries wait). */
  stopped: Member[];
}

export interface Membership {
  /** Lists the members once, then follows the runtime's event stream. */
  start(): Promise<void>;
  members(): readonly Member[];
  /** Told of every change, after members() reflects it. */
  onChange(listener: (change: MembershipChange) => void): void;
  /** True while the event stream is connected (GET /status). */
  readonly following: boolean;
  /** Lists again now: the slow safety net, and a reload's new selector. */
  resync(): Promise<void>;
  close(): Promise<void>;
}

/** A fleet as discovery sees it: its runtime and its selector. */
export type Fleet = FleetRuntime & { select: Selector };

/** How a runtime's CLI lists a fleet's containers and streams its events (discovery.ts). */
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

