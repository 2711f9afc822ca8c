// What the HTTP handlers share: the routes and rules they serve, the options the server
// is made with, and the context every handler gets. Its own module, so that the server
// (http.ts) and its handlers (upload.ts, multipart.ts, legacy.ts) each import it and not
// one another.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Operations } from '../observe/endpoints.js';
import type { OutOfFilesAlarm } from '../open-files.js';
import type { Registry } from '../queue/registry.js';
import type { FileOptions } from '../task.js';
import type { Intake } from './intake.js';
import type { Bodies, ReceivingLimits } from './receiving.js';

export interface Route {
  name: string;
  path: string;
  target: string;
  dest: string;
  token?: string;
  options: FileOptions;
}

export interface LegacyRule {
  target: string;
  /** The X-Container-Name that selects this rule: the target's container (a local target: its name). */
  container: string;
  pathPrefix: string;
  token?: string;
  options: FileOptions;
}

export interface HttpOptions {
  listen: string;
  maxBody: number;
  idleTimeout: number;
  /** http.max_receiving, http.min_rate and queue.capacity: the bounds on bodies being received (receiving.ts). */
  receiving: Omit<ReceivingLimits, 'idleTimeout'>;
  routes: Route[];
  legacy: LegacyRule[];
  /** http.allowed_hosts and http.allowed_origins (SPEC §9, browser.ts). */
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
  intake: Intake;
  /** Resumable (tus) uploads (SPEC §8): at a route's own path and at /uploads/<id>. */
  tus: TusEndpoint;
  /** http.ui: the drop page at GET /. */
  ui: boolean;
  registry: Registry;
  logger: Logger;
  /** Readiness problems, empty when ready (GET /readyz). */
  readiness(): Promise<string[]>;
  /** /metrics, /status and /dead-letter. */
  ops: Operations;
  /** Says once a minute that descriptors ran out (a failed accept or upload, a refused connection). */
  outOfFiles: OutOfFilesAlarm;
}

/**
 * What every handler gets: the options plus the idempotency keys being uploaded now,
 * and, for this request, its id and a logger that carries it (`logger`).
 */
export interface HttpContext extends HttpOptions {
  /** This request's id (request-id.ts); tasks it makes carry it. */
  requestId?: string;
  uploading: Set<string>;
  /** The bodies being received: their bounds, /status, and GET /tasks/<id> of an announced one. */
  bodies: Bodies;
  /** The drop page's files (http.ui). */
  page(req: IncomingMessage, res: ServerResponse, path: string, routes: readonly Route[]): Promise<void>;
  /** Refuses a Host that does not name the listener and a foreign Origin. */
  checkBrowser(req: IncomingMessage): void;
}

/** tus (SPEC §8): what the server hands it (tus/endpoint.ts). */
export interface TusEndpoint {
  /** OPTIONS, or a POST that creates an upload, at the route's own path. */
  atRoute(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, route: Route): Promise<void>;
  /** /uploads/<id>. */
  atUpload(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void>;
}
