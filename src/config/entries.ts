// Reading a config value that may not have its schema's shape yet: the checks that need
// the whole config run beside the schema's own (so every problem is reported at once).
import type { z } from 'zod';

export type Context = z.core.$RefinementCtx<unknown>;
export type Entry = Record<string, unknown>;

export const isEntry = (value: unknown): value is Entry => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The object entries of a list, with their index (other items are skipped). */
export const entries = (value: unknown): [Entry, number][] =>
  Array.isArray(value) ? value.flatMap((item: unknown, i) => (isEntry(item) ? [[item, i] as [Entry, number]] : [])) : [];
