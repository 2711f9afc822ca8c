// Writing answers: JSON bodies, and SPEC §3's error shape for every failure.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../errors.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Answers with `{"error": {code, message}}`. When the request has not all arrived (a
 * body not read to its end), the connection is closed after the answer so the rest of
 * the body is not parsed as a next request; a request in whole (one with no body) keeps it.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: StevedoreError, extra: Record<string, unknown> = {}): void {
  const headers: Record<string, string> = {};
  if (!req.complete) headers.connection = 'close';
  if (error.status === 503) headers['retry-after'] = String(error.details.retryAfter ?? 2);
  if (error.code === 'METHOD_NOT_ALLOWED') headers.allow = String(error.details.allow ?? '');
  if (error.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer';
  sendJson(res, error.status, { error: { code: error.code, message: error.message, ...extra } }, headers);
}

/** RFC 9110 §15.2: no 1xx answer (100 Continue, 103 Early Hints) to an HTTP/1.0 client. */
export const takesInterim = (req: IncomingMessage) => req.httpVersionMajor > 1 || req.httpVersionMinor > 0;

/** Asks a client that sent `Expect: 100-continue` for its body, once every check that needs no body has passed. */
export function continueBody(req: IncomingMessage, res: ServerResponse): void {
  if (takesInterim(req) && /^100-continue$/i.test(req.headers.expect ?? '')) res.writeContinue();
}

export const notAllowed = (allow: string[], why = `use ${allow.join(' or ')}`) =>
  new StevedoreError('METHOD_NOT_ALLOWED', `method not allowed here: ${why}`, { details: { allow: allow.join(', ') } });
