// The drop page (http.ui, SPEC §8): GET / and its few files under /ui/, all served by
// the agent, from this package, under a strict Content-Security-Policy: no other site,
// no inline script or style, no framing. The page speaks tus to the routes and reads
// GET /events like any other client; /ui/routes tells it which routes there are.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { StevedoreError } from '../../errors.js';
import { sendJson } from '../respond.js';
import type { Route } from '../types.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const assets = (name: string) => fileURLToPath(new URL(`./assets/${name}`, import.meta.url));

// The browser build of tus-js-client, as its package ships it.
const tusClient = () => createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js');

const FILES: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => assets('index.html'), type: 'text/html; charset=utf-8' },
  '/ui/app.css': { file: () => assets('app.css'), type: 'text/css; charset=utf-8' },
  '/ui/app.js': { file: () => assets('app.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/files.js': { file: () => assets('files.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/uploads.js': { file: () => assets('uploads.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/tasks.js': { file: () => assets('tasks.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/tus.min.js': { file: tusClient, type: 'text/javascript; charset=utf-8' },
  '/ui/icon.svg': { file: () => assets('icon.svg'), type: 'image/svg+xml' },
};

export const isPagePath = (path: string) => path === '/' || path.startsWith('/ui/');

/** Serves the page's files (read once, kept) and /ui/routes. */
export function createPage(): (req: IncomingMessage, res: ServerResponse, path: string, routes: readonly Route[]) => Promise<void> {
  const cache = new Map<string, Promise<Buffer>>();
  return async (req, res, path, routes) => {
    if (path === '/ui/routes') return sendJson(res, 200, { routes: routes.map((r) => ({ name: r.name, path: r.path, token: r.token !== undefined })) }, HEADERS);
    const asset = FILES[path];
    if (!asset) throw new StevedoreError('NOT_FOUND', `no such file of the drop page: ${path.slice(0, 100)}`);
    let body = cache.get(path);
    if (!body) {
      body = readFile(asset.file());
      cache.set(path, body);
      body.catch(() => cache.delete(path));
    }
    const bytes = await body;
    res.writeHead(200, { ...HEADERS, 'content-type': asset.type, 'content-length': bytes.length });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  };
}
