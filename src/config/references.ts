// Checks that need the whole config: names that refer to targets, unique names and
// paths, reserved URL paths, and the anonymous-route rule for non-loopback listeners.
import type { z } from 'zod';

interface Shape {
  targets: Record<string, { runtime: string; container?: string }>;
  http?: {
    listen: string;
    allow_anonymous: boolean;
    routes: { name: string; path: string; target: string; token?: string }[];
    legacy: { target: string; token?: string }[];
  };
  watch: { name: string; target: string; mode: string; delete: boolean; after_push: string | null }[];
}

type Context = z.core.$RefinementCtx<Shape>;

export const RESERVED_PATHS = ['/tasks', '/upload', '/healthz', '/readyz', '/metrics', '/status'];

export function checkCrossReferences(config: Shape, ctx: Context): void {
  const targetNames = new Set(Object.keys(config.targets));
  const checkTarget = (name: string, path: (string | number)[]) => {
    if (!targetNames.has(name)) {
      const known = [...targetNames].join(', ');
      ctx.addIssue({ code: 'custom', path, message: `unknown target "${name}" (targets: ${known})` });
    }
  };
  config.http?.routes.forEach((route, i) => checkTarget(route.target, ['http', 'routes', i, 'target']));
  config.http?.legacy.forEach((entry, i) => checkTarget(entry.target, ['http', 'legacy', i, 'target']));
  config.watch.forEach((watch, i) => checkTarget(watch.target, ['watch', i, 'target']));
  if (config.http) checkRoutes(config.http, ctx);
  checkUnique(config.watch.map((w) => w.name), ['watch'], 'name', ctx);
  config.watch.forEach((watch, i) => {
    if (watch.mode !== 'mirror' && watch.delete) {
      ctx.addIssue({ code: 'custom', path: ['watch', i, 'delete'], message: 'delete applies to mode: mirror only' });
    }
    if (watch.mode !== 'drop' && watch.after_push !== null) {
      ctx.addIssue({ code: 'custom', path: ['watch', i, 'after_push'], message: 'after_push applies to mode: drop only' });
    }
  });
}

function checkRoutes(http: NonNullable<Shape['http']>, ctx: Context): void {
  checkUnique(http.routes.map((r) => r.name), ['http', 'routes'], 'name', ctx);
  checkUnique(http.routes.map((r) => r.path), ['http', 'routes'], 'path', ctx);
  http.routes.forEach((route, i) => {
    const reserved = RESERVED_PATHS.find((p) => route.path === p || route.path.startsWith(`${p}/`));
    if (reserved) {
      ctx.addIssue({ code: 'custom', path: ['http', 'routes', i, 'path'], message: `${reserved} is reserved for the agent's own API` });
    }
  });
  if (http.allow_anonymous || isLoopback(http.listen)) return;
  const anonymous = (list: { token?: string }[], key: string) =>
    list.forEach((entry, i) => {
      if (entry.token !== undefined) return;
      ctx.addIssue({
        code: 'custom',
        path: ['http', key, i],
        message: `no token, and http.listen ${http.listen} is not a loopback address: set a token or http.allow_anonymous: true`,
      });
    });
  anonymous(http.routes, 'routes');
  anonymous(http.legacy, 'legacy');
}

function checkUnique(values: string[], path: (string | number)[], key: string, ctx: Context): void {
  const seen = new Map<string, number>();
  values.forEach((value, i) => {
    const first = seen.get(value);
    if (first === undefined) seen.set(value, i);
    else ctx.addIssue({ code: 'custom', path: [...path, i, key], message: `duplicate ${key} "${value}" (also at index ${first})` });
  });
}

export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
