// Reading the header fields that must appear once. node:http joins a repeated custom
// field with ", " and keeps only the first of a repeated Host, so both would pass for
// one value: headersDistinct keeps every line, and a second one is a bad request.
import type { IncomingMessage } from 'node:http';
import { StevedoreError } from '../errors.js';

/** The field's one value, undefined when absent; 400 BAD_REQUEST when it came more than once. */
export function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const values = req.headersDistinct[name];
  if (values === undefined) return undefined;
  if (values.length > 1) throw new StevedoreError('BAD_REQUEST', `the ${name} header may appear only once (it came ${values.length} times)`);
  return values[0];
}
