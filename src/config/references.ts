// Checks that need the whole config: names that refer to targets, unique names and
// paths, reserved URL paths, and the anonymous-route rule for non-loopback listeners.
// They run even when other parts of the config are invalid (so every problem is
// reported at once), hence the value is read defensively: a part with the wrong shape
// is skipped here, the schema reports it.
import { entries, isEntry, type Context, type Entry } from './entries.js';
import { checkFleets } from './fleets.js';
import { LISTEN_PATTERN, isLoopback } from './listen.js';

export const RESERVED_PATHS = ['/tasks', '/upload', '/healthz', '/readyz', '/metrics', '/status', '/dead-letter', '/uploads', '/events', '/ui'];

export function checkCrossReferences(value: unknown, ctx: Context): void {
  if (!isEntry(value)) return;
  const http = isEntry(value.http) ? value.http : undefined;
  const routes = entries(http?.routes);
  const legacy = entries(http?.legacy);
  const watch = entries(value.watch);
  if (isEntry(value.targets)) {
    const targetNames = new Set(Object.keys(value.targets));
    const known = targetNames.size > 0 ? `targets: ${[...targetNames].join(', ')}` : 'no targets are defined';
    const targets = value.targets;
    const checkTarget = ([entry, i]: [Entry, number], path: (string | number)[]) => {
      if (typeof entry.target === 'string' && !targetNames.has(entry.target)) {
        ctx.addIssue({ code: 'custom', path: [...path, i, 'target'], message: `unknown target "${entry.target}" (${known})` });
      }
      // A host directory has nothing to run a command in.
      const target = typeof entry.target === 'string' ? targets[entry.target] : undefined;
      if (entry.exec !== undefined && isEntry(target) && target.runtime === 'local') {
        ctx.addIssue({ code: 'custom', path: [...path, i, 'exec'], message: `exec needs a container target; "${String(entry.target)}" is local` });
      }
    };
    routes.forEach((route) => checkTarget(route, ['http', 'routes']));
    legacy.forEach((entry) => checkTarget(entry, ['http', 'legacy']));
    watch.forEach((entry) => checkTarget(entry, ['watch']));
  }
  if (isEntry(value.targets)) checkFleets(value.targets, { legacy, watch }, ctx);
  if (http) checkRoutes(http, routes, legacy, ctx);
  checkUnique(watch, ['watch'], 'name', ctx);
  for (const [entry, i] of watch) {
    if (entry.mode === 'drop' && entry.delete === true) {
      ctx.addIssue({ code: 'custom', path: ['watch', i, 'delete'], message: 'delete applies to mode: mirror only' });
    }
    if (entry.mode === 'mirror' && entry.after_push !== null && entry.after_push !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['watch', i, 'after_push'], message: 'after_push applies to mode: drop only' });
    }
    if (entry.mode === 'mirror' && entry.retain === true) {
      ctx.addIssue({ code: 'custom', path: ['watch', i, 'retain'], message: 'retain applies to mode: drop only (a mirror brings a new container its current content anyway)' });
    }
  }
}

function checkRoutes(http: Entry, routes: [Entry, number][], legacy: [Entry, number][], ctx: Context): void {
  checkUnique(routes, ['http', 'routes'], 'name', ctx);
  checkUnique(routes, ['http', 'routes'], 'path', ctx);
  for (const [route, i] of routes) {
    if (typeof route.path !== 'string') continue;
    const routePath = route.path;
    const reserved = RESERVED_PATHS.find((p) => routePath === p || routePath.startsWith(`${p}/`));
    if (reserved) {
      ctx.addIssue({ code: 'custom', path: ['http', 'routes', i, 'path'], message: `${reserved} is reserved for the agent's own API` });
    }
  }
  const { listen } = http;
  if (http.allow_anonymous === true || typeof listen !== 'string' || !LISTEN_PATTERN.test(listen) || isLoopback(listen)) return;
  const anonymous = (list: [Entry, number][], key: string) => {
    for (const [entry, i] of list) {
      if (entry.token !== undefined) continue;
      ctx.addIssue({
        code: 'custom',
        path: ['http', key, i],
        message: `no token, and http.listen ${listen} is not a loopback address: set a token or http.allow_anonymous: true`,
      });
    }
  };
  anonymous(routes, 'routes');
  anonymous(legacy, 'legacy');
}

function checkUnique(list: [Entry, number][], path: (string | number)[], key: string, ctx: Context): void {
  const seen = new Map<string, number>();
  for (const [entry, i] of list) {
    const value = entry[key];
    if (typeof value !== 'string') continue;
    const first = seen.get(value);
    if (first === undefined) seen.set(value, i);
    else ctx.addIssue({ code: 'custom', path: [...path, i, key], message: `duplicate ${key} "${value}" (also at index ${first})` });
  }
}
