// What one tus request carries from our handler (endpoint.ts) down to the data store,
// through @tus/server, which hands the store only an id, an offset and a stream: the
// route it was admitted for, its checksum, and the bounds on its body. Passed in an
// AsyncLocalStorage so that every await inside the library keeps it.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';
import { StevedoreError } from '../../errors.js';
import type { FileOptions } from '../../task.js';
import type { Admission } from '../intake.js';
import type { Body } from '../receiving.js';
import type { HttpContext } from '../types.js';
import type { ExpectedChecksum } from './checksum.js';

/** Where a new upload goes (POST at a route's path), decided before the library sees the request. */
export interface Creation {
  route: string;
  target: string;
  dest: string;
  options: FileOptions;
  anonymous: boolean;
}

export interface TusCall {
  ctx: HttpContext;
  req: IncomingMessage;
  /** The upload's id: made for a POST, taken from /uploads/<id> otherwise. */
  id: string;
  creation?: Creation;
  checksum?: ExpectedChecksum;
  /** The body's place among those being received (min_rate, max_receiving). */
  body?: Body;
  /** The body's bytes, held against min_free until written. */
  admission?: Admission;
  /** The error the answer must carry (set by the library's error hook). */
  failure?: StevedoreError;
}

const calls = new AsyncLocalStorage<TusCall>();

export const runCall = <T>(call: TusCall, run: () => Promise<T>): Promise<T> => calls.run(call, run);

/** The request being served; the store is only ever called inside runCall(). */
export function currentCall(): TusCall {
  const call = calls.getStore();
  if (!call) throw new StevedoreError('INTERNAL', 'the upload store was called outside a tus request');
  return call;
}
