// Reading a runtime's answers about its containers: JSON, and a member is a name and an
// id. An answer of another shape is a TARGET_IO (a CLI this code does not know).
import { StevedoreError } from '../../errors.js';
import type { Member } from './types.js';

/** Parses a CLI's JSON answer. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new StevedoreError('TARGET_IO', `${what}: expected JSON, got ${JSON.stringify(text.slice(0, 200))}`, { cause: error });
  }
}

/** An object's fields, or none for anything else. */
export const fields = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};

export function memberOf(what: string, name: unknown, id: unknown, running: boolean): Member {
  if (typeof name !== 'string' || name === '' || typeof id !== 'string' || id === '') {
    throw unexpected(what, { name, id });
  }
  return { name, id, running };
}

export const unexpected = (what: string, value: unknown): StevedoreError =>
  new StevedoreError('TARGET_IO', `${what}: expected containers with a name and an id, got ${JSON.stringify(value)?.slice(0, 200) ?? String(value)}`);

/** A signal that aborts after `ms` with a TARGET_DOWN naming `who` (what run() then throws). */
export function answerWithin(ms: number, who: string): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new StevedoreError('TARGET_DOWN', `${who} did not answer within ${ms / 1000} s`)), ms);
  timer.unref();
  return controller.signal;
}
