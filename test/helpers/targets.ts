// Targets with scripted behaviour, for startAgent({ createTarget }): each wraps the
// real adapter the config names, so files still land where the test can see them.
import type { AgentOptions } from '../../src/agent.js';
import { StevedoreError, type ErrorCode } from '../../src/errors.js';
import { createTarget as realTarget } from '../../src/targets/index.js';
import { failed, type PushItem, type PushResult, type Target } from '../../src/targets/target.js';

type CreateTarget = NonNullable<AgentOptions['createTarget']>;
export type PushFn = (items: readonly PushItem[], signal: AbortSignal, real: Target) => Promise<PushResult[]>;

export function scriptedTarget(push: PushFn): CreateTarget {
  return (name, config, logger, ledger) => {
    const real = realTarget(name, config, logger, ledger);
    return { name, runtime: real.runtime, push: (items, signal) => push(items, signal, real) };
  };
}

/** Fails every file for good with `code` (a permanent kind, e.g. PERMISSION_DENIED). */
export const failingTarget = (code: ErrorCode = 'PERMISSION_DENIED'): CreateTarget =>
  scriptedTarget(async (items) => items.map(() => failed(new StevedoreError(code, `scripted ${code}`))));

export interface GatedTarget {
  createTarget: CreateTarget;
  /** Lets every push, waiting or future, go through to the real target. */
  open(): void;
  /** How many pushes have started. */
  readonly started: number;
}

/** Every push waits until open() (or shutdown cancels it). */
export function gatedTarget(): GatedTarget {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started = 0;
  const createTarget = scriptedTarget(async (items, signal, real) => {
    started += 1;
    const cancelled = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([gate, cancelled]);
    if (signal.aborted) return items.map(() => failed(new StevedoreError('PUSH_TIMEOUT', 'cancelled')));
    return real.push(items, signal);
  });
  return {
    createTarget,
    open: () => release(),
    get started() {
      return started;
    },
  };
}

// --- A controllable target for the scheduler, local-target and recovery tests ---
// It can fail with a given code a number of times, hold pushes at a gate until the
// test releases them, and records every batch and how many pushes overlapped.
// Pushes let through go to `delegate` (the real local target, usually) or, without
// one, simply answer ok.

/** Counts overlapping pushes; share one between targets to measure them together. */
export interface Probe {
  active: number;
  max: number;
}

export const createProbe = (): Probe => ({ active: 0, max: 0 });

export interface TestTargetOptions {
  name?: string;
  /** Where pushes go once they are let through and not failed; default: every item ok. */
  delegate?: Target;
  /** The first `times` push calls fail every item with `code` (times defaults to Infinity). */
  fail?: { code: ErrorCode; times?: number; message?: string };
  /** Per-item failure, checked after `fail`: return a code to fail that item. */
  failItem?(item: PushItem): ErrorCode | undefined;
  /** Start with the gate closed: pushes wait until release(). */
  held?: boolean;
  /** Extra probes (e.g. one shared by every target) updated with this target's own. */
  probes?: Probe[];
}

export interface TestTarget extends Target {
  /** The items of every push call, in call order. */
  readonly batches: PushItem[][];
  /** Overlapping pushes into this target. */
  readonly probe: Probe;
  /** Highest number of pushes that were carrying one destination at the same time. */
  readonly maxPerDest: number;
  /** Pushes currently waiting at the closed gate. */
  readonly waiting: number;
  /** Signals of every push call, to check cancellation. */
  readonly signals: AbortSignal[];
  /** Lets `count` waiting pushes through (default: all, and opens the gate). */
  release(count?: number): void;
}

export function createTestTarget(options: TestTargetOptions = {}): TestTarget {
  const batches: PushItem[][] = [];
  const signals: AbortSignal[] = [];
  const probe = createProbe();
  const probes = [probe, ...(options.probes ?? [])];
  const perDest = new Map<string, number>();
  const gate: (() => void)[] = [];
  let open = !options.held;
  const { fail } = options;
  let failedCalls = 0;
  let maxPerDest = 0;

  const waitAtGate = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (open) return resolve();
      const pass = () => {
        signal.removeEventListener('abort', pass);
        const at = gate.indexOf(pass);
        if (at >= 0) gate.splice(at, 1);
        resolve();
      };
      gate.push(pass);
      signal.addEventListener('abort', pass, { once: true });
    });

  const enter = (items: readonly PushItem[]) => {
    probes.forEach((p) => (p.max = Math.max(p.max, (p.active += 1))));
    for (const { dest } of items) {
      const n = (perDest.get(dest) ?? 0) + 1;
      perDest.set(dest, n);
      maxPerDest = Math.max(maxPerDest, n);
    }
  };
  const leave = (items: readonly PushItem[]) => {
    probes.forEach((p) => (p.active -= 1));
    for (const { dest } of items) perDest.set(dest, (perDest.get(dest) ?? 1) - 1);
  };

  async function decide(items: readonly PushItem[], signal: AbortSignal): Promise<PushResult[]> {
    if (signal.aborted) return items.map(() => scripted('PUSH_TIMEOUT', 'push cancelled or timed out'));
    if (fail && failedCalls < (fail.times ?? Infinity)) {
      failedCalls += 1;
      const { code, message = `test target: ${code}` } = fail;
      return items.map(() => scripted(code, message));
    }
    const verdicts = items.map((item) => options.failItem?.(item));
    const passing = items.filter((_, i) => verdicts[i] === undefined);
    const delegated = options.delegate && passing.length > 0 ? await options.delegate.push(passing, signal) : passing.map(() => ({ ok: true }) as const);
    let next = 0;
    return verdicts.map((code) => (code ? scripted(code, `test target: ${code}`) : (delegated[next++] ?? scripted('TARGET_IO', 'no result'))));
  }

  return {
    name: options.name ?? 'box',
    runtime: 'test',
    batches,
    probe,
    signals,
    get maxPerDest() {
      return maxPerDest;
    },
    get waiting() {
      return gate.length;
    },
    async push(items, signal) {
      batches.push([...items]);
      signals.push(signal);
      enter(items);
      try {
        await waitAtGate(signal);
        // Always yield once, so that pushes overlap as they would with a real runtime.
        await new Promise((resolve) => setImmediate(resolve));
        return await decide(items, signal);
      } finally {
        leave(items);
      }
    },
    release(count = Infinity) {
      if (count === Infinity) open = true;
      gate.slice(0, count).forEach((pass) => pass());
    },
  };
}

/** For startAgent({ createTarget }): `make` wraps each configured target's real adapter. */
export const wrapTargets =
  (make: (real: Target) => Target): CreateTarget =>
  (name, config) =>
    make(realTarget(name, config));

const scripted = (code: ErrorCode, message: string): PushResult => failed(new StevedoreError(code, message));
