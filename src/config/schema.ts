// The config file's schema (SPEC §2). Unknown keys are errors everywhere; durations,
// sizes and modes are parsed here so the rest of the code sees numbers.
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { checkAbsolutePath } from '../ingest/paths.js';
import { DURATION_PATTERN, SIZE_PATTERN, parseDuration, parseSize } from './units.js';
import { LISTEN_PATTERN, listenProblem } from './listen.js';
import { checkCrossReferences } from './references.js';

// Node timers hold at most 2^31-1 ms (~24.8 days); a longer one fires at once.
const MAX_DURATION = 2 ** 31 - 1;
const duration = z
  .string()
  .regex(DURATION_PATTERN, { error: 'expected a duration like "250ms", "5s", "2m" or "1h"' })
  .refine((text) => (parseDuration(text) ?? 0) <= MAX_DURATION, { error: 'expected at most 596h (timers cannot hold longer)' })
  .transform((text) => parseDuration(text) ?? 0);
// A time limit: 0 does not turn it off, it would cut everything at once (a push), or
// leave a body that sends nothing never cut (node reads a 0 timeout as none).
const timeLimit = duration.refine((ms) => ms > 0, { error: 'expected a duration over 0' });

const sizeError = 'expected a size like "512KiB" or "2GiB", or a whole number of bytes';
const size = z
  .union([z.int().nonnegative({ error: sizeError }), z.string().regex(SIZE_PATTERN, { error: sizeError })], { error: sizeError })
  .transform((value) => (typeof value === 'number' ? value : (parseSize(value) ?? 0)));

// A rate is a size per second ("1KiB/s"); 0 turns its check off.
const RATE_PATTERN = new RegExp(SIZE_PATTERN.source.replace(/\$$/, '\\/s$'));
const rateError = 'expected a rate like "1KiB/s", or 0 to turn the check off';
const rate = z
  .union([z.literal(0), z.string().regex(RATE_PATTERN, { error: rateError })], { error: rateError })
  .transform((value) => (value === 0 ? 0 : (parseSize(value.slice(0, -2)) ?? 0)));

const fileMode = z
  .string({ error: 'expected an octal mode in quotes, like "0644"' })
  .regex(/^0?[0-7]{3,4}$/, { error: 'expected an octal mode in quotes, like "0644"' })
  .transform((text) => parseInt(text, 8));

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
  error: 'expected a name of letters, digits, "_", "-" or "." (at most 63)',
});

// A container directory (a `dest`, a `path_prefix`): the shape here (and in the JSON
// Schema), then, once the shape is right, the rules an uploaded path obeys
// (ingest/paths.ts), so that it is already normal: no "." or ".." segments, no control
// or invisible characters, NFC.
const ABSOLUTE_PATH = /^\/(?:[^/\0\\]+(?:\/[^/\0\\]+)*)?$/;
const absolutePath = z
  .string()
  .regex(ABSOLUTE_PATH, { error: 'expected an absolute path like /var/www/html (no trailing slash, no empty segments)' })
  .superRefine((text, ctx) => {
    if (!ABSOLUTE_PATH.test(text)) return;
    try {
      checkAbsolutePath(text);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `expected a normalized absolute path like /var/www/html: ${errorMessage(error)}` });
    }
  });

// A bearer token is visible ASCII (RFC 6750's b64token is a subset): a space, a control
// character or a non-ASCII one could never arrive in an Authorization header as written.
// The message never repeats the token. It may be all digits: `token: ${PIN}`
// interpolates to a plain number.
const token = z.union([
  z.string().regex(/^[\x21-\x7e]+$/, { error: 'expected a token of visible ASCII characters (no spaces, control or non-ASCII characters; RFC 6750)' }),
  z.number().transform(String),
]);

const owner = z.strictObject({ uid: z.int().min(0), gid: z.int().min(0) });

const attempts = z.int().min(1).max(1000);
const retry = z.strictObject({
  attempts: attempts.default(5),
  initial_delay: duration.prefault('500ms'),
  max_delay: duration.prefault('30s'),
});
// An override carries only the keys it sets (no defaults: `retry.partial()` would fill
// in 5 / 500ms / 30s and so mask `defaults.retry`); resolve.ts merges it over defaults.
const retryOverride = z.strictObject({ attempts, initial_delay: duration, max_delay: duration }).partial();

/** Per-file options: in `defaults`, and as overrides on a route or watch. */
const fileOptions = {
  owner: owner.optional(),
  mode: fileMode.optional(),
  dir_mode: fileMode.optional(),
  retry: retryOverride.optional(),
  push_timeout: timeLimit.optional(),
};

// A fleet (SPEC §7): every container whose labels (Incus/LXD: config keys user.<key>)
// all match and whose name matches the glob. Shaped to map onto a Kubernetes label
// selector later: equality on labels, ANDed.
const labelKey = z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$/, { error: 'expected a label key of letters, digits, ".", "_", "/" or "-"' });
const selector = z.strictObject({
  labels: z.record(labelKey, z.union([z.string(), z.number().transform(String), z.boolean().transform(String)])).default({}),
  /** A glob on the container's name (picomatch), ANDed with the labels. */
  name: z.string().min(1).optional(),
});
/** One container (`container`) or a fleet (`select`): exactly one of them (references.ts). */
const containerTarget = { container: z.string().min(1).optional(), select: selector.optional() };
const target = z.discriminatedUnion('runtime', [
  z.strictObject({ runtime: z.literal('local'), root: z.string().min(1) }),
  z.strictObject({
    runtime: z.literal(['incus', 'lxd']),
    ...containerTarget,
    /** A remote added with `incus remote add` (`lxc remote add`). */
    remote: name.optional(),
    project: z.string().min(1).optional(),
  }),
  z.strictObject({
    runtime: z.literal(['docker', 'podman']),
    ...containerTarget,
    /** The daemon: unix:///path, tcp://host:port or ssh://user@host (else DOCKER_HOST / CONTAINER_HOST). */
    host: z.string().regex(/^(unix|tcp|ssh):\/\/\S+$/, { error: 'expected a daemon URL like unix:///run/docker.sock or tcp://127.0.0.1:2375' }).optional(),
  }),
], { error: 'expected runtime to be one of incus, lxd, docker, podman, local (kubectl is planned)' });

const URL_PATH = /^(\/[A-Za-z0-9._~-]+)+$/;
const isDotSegment = (segment: string) => segment === '.' || segment === '..';

const route = z.strictObject({
  name,
  path: z
    .string()
    .regex(URL_PATH, { error: 'expected a URL path like /drop/web (letters, digits, . _ ~ -; no trailing slash)' })
    .refine((text) => !URL_PATH.test(text) || !text.split('/').some(isDotSegment), {
      error: 'expected a URL path like /drop/web: "." and ".." segments are not allowed',
    }),
  target: name,
  dest: absolutePath,
  token: token.optional(),
  exec: z.array(z.string()).min(1).optional(),
  /** Keep the newest version of each destination, for containers that join the target later (SPEC §7). */
  retain: z.boolean().default(false),
  ...fileOptions,
});

const legacy = z.strictObject({
  target: name,
  path_prefix: absolutePath,
  token: token.optional(),
});

// SPEC §9: which Host names and browser origins the listener answers besides its own.
const allowedHost = z.string().regex(/^\.?(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+\.?$/, {
  error: 'expected a host name like files.example.com, or .example.com for it and every name under it (no scheme, no port)',
});
const allowedOrigin = z.string().regex(/^https?:\/\/(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?$/, {
  error: 'expected an origin like https://app.example.com or http://localhost:3000 (scheme, host, optional port; no path)',
  abort: true,
}).refine((origin) => URL.canParse(origin), { error: 'expected an origin with a valid host and a port up to 65535' });

const http = z.strictObject({
  listen: z
    .string()
    .regex(LISTEN_PATTERN, { error: 'expected host:port, like 127.0.0.1:8080 or [::1]:8080', abort: true })
    .superRefine((text, ctx) => {
      const problem = listenProblem(text);
      if (problem) ctx.addIssue({ code: 'custom', message: `${problem} (expected host:port, like 127.0.0.1:8080)` });
    }),
  max_body: size.prefault('2GiB'),
  idle_timeout: timeLimit.prefault('60s'),
  min_free: size.prefault('1GiB'),
  /** Bodies received at once (never more than half of queue.capacity); routes without a token get half of them. */
  max_receiving: z.int().min(1).max(100_000).default(64),
  /** A body slower than this, over 10 s (or idle_timeout) of waiting for it, is cut with 408. */
  min_rate: rate.prefault('1KiB/s'),
  allow_anonymous: z.boolean().default(false),
  /** Bearer token for /metrics, /status and /dead-letter (which takes changes only on loopback without it). */
  admin_token: token.optional(),
  /** Host names that also name this listener (IP addresses, localhost and the listen host always do). */
  allowed_hosts: z.array(allowedHost).default([]),
  /** Browser origins whose pages may send requests, besides the listener's own. */
  allowed_origins: z.array(allowedOrigin).default([]),
  /** Serve the drop page at GET / (SPEC §8). */
  ui: z.boolean().default(false),
  /** A resumable (tus) upload that receives nothing this long is removed. */
  upload_expiry: timeLimit.prefault('24h'),
  legacy: z.array(legacy).default([]),
  routes: z.array(route).default([]),
});

const watch = z.strictObject({
  name,
  path: z.string().min(1),
  target: name,
  dest: absolutePath,
  ignore: z.array(z.string().min(1)).default([]),
  settle: duration.prefault('300ms'),
  initial: z.boolean().default(true),
  delete: z.boolean().default(false),
  after_push: z.string().min(1).nullable().default(null),
  poll: z.boolean().default(false),
  exec: z.array(z.string()).min(1).optional(),
  /** drop only: keep the newest version of each destination for containers that join later (a mirror always brings them its content). */
  retain: z.boolean().default(false),
  ...fileOptions,
  // `mode` is drop | mirror here; the landed file's mode is `file_mode`.
  mode: z.enum(['drop', 'mirror']).default('drop'),
  file_mode: fileMode.optional(),
});

export const configSchema = z
  .strictObject({
    version: z.literal(1, { error: 'expected version: 1' }),
    state_dir: z.string().min(1).default('./var/stevedore'),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        format: z.enum(['json', 'pretty', 'auto']).default('auto'),
      })
      .prefault({}),
    targets: z.record(name, target).refine((targets) => Object.keys(targets).length > 0, {
      error: 'expected at least one target',
    }),
    defaults: z
      .strictObject({
        owner: owner.optional(),
        mode: fileMode.prefault('0644'),
        dir_mode: fileMode.prefault('0755'),
        retry: retry.prefault({}),
        push_timeout: timeLimit.prefault('5m'),
      })
      .prefault({}),
    queue: z
      .strictObject({
        capacity: z.int().min(1).default(1000),
        concurrency: z.int().min(1).max(256).default(4),
        per_target: z.int().min(1).max(256).default(2),
        batch_files: z.int().min(1).max(100_000).default(500),
        batch_bytes: size.prefault('64MiB'),
        shutdown_grace: duration.prefault('30s'),
      })
      .prefault({}),
    http: http.optional(),
    watch: z.array(watch).default([]),
    /** Bound on the retained versions under state_dir/retain (oldest dropped first, logged). */
    retain_max: size.prefault('1GiB'),
  })
  // `when`: cross-reference problems are reported together with every other problem,
  // not only once the rest is valid (checkCrossReferences reads the value defensively).
  .superRefine(checkCrossReferences, { when: () => true });

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type TargetConfig = ParsedConfig['targets'][string];
type ContainerTargetConfig = Extract<TargetConfig, { select?: unknown }>;
/** A container target that selects its containers by labels or name (SPEC §7). */
export type FleetConfig = ContainerTargetConfig & { select: NonNullable<ContainerTargetConfig['select']> };
export const isFleet = (config: TargetConfig | undefined): config is FleetConfig => config !== undefined && config.runtime !== 'local' && config.select !== undefined;
export type RouteConfig = NonNullable<ParsedConfig['http']>['routes'][number];
export type LegacyConfig = NonNullable<ParsedConfig['http']>['legacy'][number];
export type WatchConfig = ParsedConfig['watch'][number];
export type DefaultsConfig = ParsedConfig['defaults'];
