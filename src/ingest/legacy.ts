// The original design's protocol: POST /upload with X-File-Path (absolute path in the
// container) and X-Container-Name, allowed only where an `http.legacy` rule says so.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../errors.js';
import { bearerToken, tokenAllows } from './auth.js';
import type { HttpContext, LegacyRule } from './types.js';
import { singleHeader } from './headers.js';
import { decodeHeaderPath, isUnder } from './paths.js';
import { acceptBody } from './upload.js';

export async function handleLegacy(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (ctx.legacy.length === 0) throw new StevedoreError('NOT_FOUND', 'POST /upload is not enabled (see http.legacy)');
  const presented = bearerToken(req.headers);
  const trusted = ctx.legacy.filter((rule) => tokenAllows(rule.token, presented));
  if (trusted.length === 0) throw new StevedoreError('UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer <token>)');
  // Node reads header bytes as latin1; clients send UTF-8.
  const container = Buffer.from(requiredHeader(req, 'x-container-name'), 'latin1').toString('utf8');
  const dest = decodeHeaderPath(requiredHeader(req, 'x-file-path'));
  const rule = trusted.find((r) => r.container === container && dest !== r.pathPrefix && isUnder(dest, r.pathPrefix));
  if (!rule) throw new StevedoreError('FORBIDDEN', `http.legacy does not allow ${dest} in container "${container}"`);
  await acceptBody(ctx, req, res, { route: 'legacy', target: rule.target, dest, options: rule.options, anonymous: rule.token === undefined, idempotencyScope: legacyScope(rule) });
}

// Every legacy request has the route "legacy": keyed by it alone, one tenant's key
// answered another's request with the first tenant's task and dropped its bytes. A key
// is unique per rule and token instead. The journal keeps this scope with the task, so
// the token is in it only as part of a SHA-256 digest.
function legacyScope(rule: LegacyRule): string {
  const digest = createHash('sha256').update([rule.target, rule.pathPrefix, rule.token ?? ''].join('\0')).digest('base64url');
  return `legacy:${digest}`;
}

function requiredHeader(req: IncomingMessage, name: string): string {
  const value = singleHeader(req, name);
  if (typeof value !== 'string' || value === '') throw new StevedoreError('BAD_REQUEST', `the ${name} header is required`);
  return value;
}
