// Bearer tokens, compared in constant time. Both sides are hashed first so that
// timingSafeEqual sees equal lengths and the comparison time says nothing about the
// token's length either.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const digest = (text: string) => createHash('sha256').update(text).digest();

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

/** True when no token is required, or the request's bearer token equals it. */
export function tokenAllows(required: string | undefined, presented: string | undefined): boolean {
  if (required === undefined) return true;
  return timingSafeEqual(digest(required), digest(presented ?? ''));
}
