// The operator's endpoints: GET /metrics, GET /status, GET /events (task changes as
// Server-Sent Events), and the dead-letter store
// (GET /dead-letter, POST /dead-letter/<id>/retry, POST /dead-letter/retry for all,
// DELETE /dead-letter/<id>). `http.admin_token` guards all of them. Without it they
// answer on a loopback listener (reads also on any listener with allow_anonymous), and
// a change never comes from a browser page (CSRF): a request with an Origin is refused.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../errors.js';
import { bearerToken, tokenAllows } from '../ingest/auth.js';
import { notAllowed, sendJson } from '../ingest/respond.js';

export interface Operations {
  readonly token?: string | undefined;
  /** Without a token: false on a non-loopback listener unless allow_anonymous. */
  readonly allowReads: boolean;
  /** Without a token: false on a non-loopback listener. */
  readonly allowChanges: boolean;
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): Promise<unknown>;
  /** GET /events: a stream of task changes (events.ts). */
  events(req: IncomingMessage, res: ServerResponse): void;
  deadLetter: {
    list(): Promise<unknown[]>;
    /** Replays one entry, or all of them without an id. */
    retry(id?: string): Promise<unknown>;
    purge(id: string): Promise<void>;
  };
}

export const isOpsPath = (path: string) => path === '/metrics' || path === '/status' || path === '/events' || path === '/dead-letter' || path.startsWith('/dead-letter/');

export async function handleOps(ops: Operations, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (!tokenAllows(ops.token, bearerToken(req.headers))) throw new StevedoreError('UNAUTHORIZED', 'a valid bearer token (http.admin_token) is required');
  const method = req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  if (!ops.allowReads) throw new StevedoreError('FORBIDDEN', 'set http.admin_token to use the operator endpoints through a non-loopback listener');
  if (path === '/metrics') {
    if (!read) throw notAllowed(['GET', 'HEAD']);
    const { contentType, body } = await ops.metrics();
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }
  if (path === '/status') {
    if (!read) throw notAllowed(['GET', 'HEAD']);
    return sendJson(res, 200, await ops.status());
  }
  if (path === '/events') {
    if (!read) throw notAllowed(['GET', 'HEAD']);
    return ops.events(req, res);
  }
  if (path === '/dead-letter') {
    if (!read) throw notAllowed(['GET', 'HEAD']);
    return sendJson(res, 200, { entries: await ops.deadLetter.list() });
  }
  const [id, action, ...rest] = path.slice('/dead-letter/'.length).split('/');
  if (rest.length > 0 || !id) throw new StevedoreError('NOT_FOUND', `no such endpoint: ${path}`);
  const change = (allow: string[]) => {
    if (!allow.includes(method)) throw notAllowed(allow);
    if (!ops.allowChanges) throw new StevedoreError('FORBIDDEN', 'set http.admin_token to change the dead-letter store through a non-loopback listener');
    if (ops.token === undefined && req.headers.origin !== undefined) throw new StevedoreError('FORBIDDEN', 'changes are not taken from a browser page without http.admin_token');
  };
  if (id === 'retry' && action === undefined) {
    change(['POST']);
    return sendJson(res, 200, await ops.deadLetter.retry());
  }
  if (action === 'retry') {
    change(['POST']);
    return sendJson(res, 200, await ops.deadLetter.retry(id));
  }
  if (action !== undefined) throw new StevedoreError('NOT_FOUND', `no such endpoint: ${path}`);
  change(['DELETE']);
  await ops.deadLetter.purge(id);
  return sendJson(res, 200, { purged: id });
}
