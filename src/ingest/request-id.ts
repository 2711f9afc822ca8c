// Each request's id, as fastify gives one: taken from the client's X-Request-Id when it
// is a sane token (so that a proxy's or a client's id follows the upload through the
// agent's logs), made here otherwise. It is echoed in the answer's X-Request-Id, carried
// by every log line about the request, and journaled with each task it made.
import type { IncomingMessage } from 'node:http';
import { randomName } from '../random.js';

export const REQUEST_ID_HEADER = 'x-request-id';

// Visible characters that cannot forge a log line or a header, as long as a UUID or a
// W3C trace id with room to spare.
const SANE = /^[\w.:@/+=-]{1,128}$/;

/** The client's X-Request-Id if it came once and is sane, else a new random one. */
export function requestIdOf(req: IncomingMessage): string {
  const sent = req.headersDistinct[REQUEST_ID_HEADER];
  const only = sent?.length === 1 ? sent[0] : undefined;
  return only !== undefined && SANE.test(only) ? only : randomName(12);
}
