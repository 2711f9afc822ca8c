import type { IncomingHttpHeaders } from 'node:http';
import { StevedoreError } from '../errors.js';

/** One header's value; a header that must appear once but came repeated is a bad request. */
export function singleHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) {
    if (value.length > 1) throw new StevedoreError('BAD_REQUEST', `the ${name} header may appear only once`);
    return value[0];
  }
  return value;
}
