// The one place that decides whether a path from the outside world is safe and
// which container path it maps to. Posix semantics throughout; anything odd is
// rejected with BAD_PATH rather than normalized, so what we write is exactly
// what the client named. What one name may hold is names.ts's policy.
import { StevedoreError } from '../errors.js';
import { nameProblem } from './names.js';

export const MAX_PATH_BYTES = 4096; // whole path, UTF-8 bytes
export const MAX_SEGMENT_BYTES = 255; // NAME_MAX
// The longest container path a file may land at: batch.sh first unpacks it as
// DIR/.stevedore-TAG/NAME, 21 bytes longer, which must fit PATH_MAX (4096 with its NUL).
export const MAX_DEST_BYTES = 4096 - 1 - 21;

const MAX_DETAIL_CHARS = 256;

function fail(message: string, path: string): never {
  const shown = path.length > MAX_DETAIL_CHARS ? `${path.slice(0, MAX_DETAIL_CHARS)}…` : path;
  throw new StevedoreError('BAD_PATH', message, { details: { path: shown } });
}

function checkSegment(segment: string, n: number, isLast: boolean, path: string): void {
  const where = `path segment ${n}`;
  if (segment === '') {
    fail(isLast && n > 1 ? 'path has a trailing "/"' : `${where} is empty ("//")`, path);
  }
  if (segment === '.') fail(`${where} is ".": current-directory references are not allowed`, path);
  if (segment === '..') fail(`${where} is "..": parent references are not allowed`, path);
  const bytes = Buffer.byteLength(segment, 'utf8');
  if (bytes > MAX_SEGMENT_BYTES) {
    fail(`${where} is ${bytes} bytes, over the ${MAX_SEGMENT_BYTES}-byte name limit`, path);
  }
  const problem = nameProblem(segment);
  if (problem !== undefined) fail(`${where} ${problem}`, path);
}

function checkTotalLength(path: string, shown: string): void {
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_PATH_BYTES) {
    fail(`path is ${bytes} bytes, over the ${MAX_PATH_BYTES}-byte limit`, shown);
  }
}

// `body` is a path with no leading "/"; `shown` is what the caller passed in.
function checkSegments(body: string, shown: string): void {
  checkTotalLength(body, shown);
  const segments = body.split('/');
  segments.forEach((segment, i) => checkSegment(segment, i + 1, i === segments.length - 1, shown));
}

// Decodes one segment exactly once; decodeURIComponent throws URIError on bad
// escapes and on overlong or otherwise invalid UTF-8, which we turn into BAD_PATH.
function decodeSegment(segment: string, n: number, raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return fail(`path segment ${n} has malformed percent-encoding or invalid UTF-8`, raw);
  }
  if (decoded.includes('/')) fail(`path segment ${n} contains an encoded "/"`, raw);
  return decoded;
}

/** Percent-decodes a URL path tail ("a/b%20c.txt", no query string, no leading slash required: leading "/" is stripped once) segment by segment and validates it; returns the safe relative path ("a/b c.txt"). */
export function decodeUrlPath(raw: string): string {
  // Each decoded byte costs at least one raw char and at most three ("%xx"),
  // so a longer raw path can only decode to something over the limit.
  if (raw.length > MAX_PATH_BYTES * 3 + 1) {
    const chars = raw.length;
    fail(`encoded path is ${chars} characters, too long to decode to ${MAX_PATH_BYTES} bytes`, raw);
  }
  const tail = raw.startsWith('/') ? raw.slice(1) : raw;
  if (tail === '') fail('path is empty', raw);
  if (tail.startsWith('/')) fail('path must be relative: it starts with "//"', raw);
  // A raw "?" or "#" means the caller forgot to strip the query or fragment.
  if (/[?#]/.test(tail)) fail('path contains a raw "?" or "#": strip the query string first', raw);
  const decoded = tail
    .split('/')
    .map((segment, i) => decodeSegment(segment, i + 1, raw))
    .join('/');
  checkSegments(decoded, raw);
  return decoded;
}

/** Validates an already-decoded relative path (e.g. a multipart filename, which may contain "sub/dir/name"); returns it unchanged when safe. */
export function checkRelativePath(rel: string): string {
  if (rel === '') fail('path is empty', rel);
  if (rel.startsWith('/')) fail('path must be relative: it starts with "/"', rel);
  checkSegments(rel, rel);
  return rel;
}

/** Validates an absolute posix path (a container destination, e.g. a legacy X-File-Path header or a config `dest`); returns it without a trailing slash ("/" stays "/"). */
export function checkAbsolutePath(path: string): string {
  if (!path.startsWith('/')) fail('path must be absolute: it does not start with "/"', path);
  if (path === '/') return '/';
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  // "//" trims to "/" and is caught here as an empty segment.
  checkTotalLength(trimmed, path);
  checkSegments(trimmed.slice(1), path);
  return trimmed;
}

function checkDestLength(dest: string): void {
  const bytes = Buffer.byteLength(dest, 'utf8');
  if (bytes > MAX_DEST_BYTES) {
    fail(`destination is ${bytes} bytes, over the ${MAX_DEST_BYTES}-byte limit (with its staging name it must fit the container's PATH_MAX, 4096)`, dest);
  }
}

/** posix-joins a validated absolute dest dir and a validated relative path into the path a file lands at. */
export function joinDest(dest: string, rel: string): string {
  const dir = checkAbsolutePath(dest);
  checkRelativePath(rel);
  const joined = dir === '/' ? `/${rel}` : `${dir}/${rel}`;
  checkDestLength(joined);
  return joined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An X-File-Path header as node hands it over (one latin1 character per byte): decoded as UTF-8 and checked as the path a file lands at. */
export function decodeHeaderPath(header: string): string {
  let dest: string;
  try {
    // ignoreBOM keeps a leading BOM, to be refused, instead of dropping it unseen.
    dest = strictUtf8.decode(Buffer.from(header, 'latin1'));
  } catch {
    return fail('path is not valid UTF-8', header);
  }
  if (dest.endsWith('/')) fail('path ends with "/": it must name a file, not a directory', dest);
  checkAbsolutePath(dest);
  checkDestLength(dest);
  return dest;
}

/** True when absolute `path` equals `prefix` or lies under it, segment-wise ("/var/www2" is NOT under "/var/www"). */
export function isUnder(path: string, prefix: string): boolean {
  // Both are validated (and may throw BAD_PATH): a string check on
  // "/srv/dest/../etc" would otherwise wrongly say "under".
  const p = checkAbsolutePath(path);
  const pre = checkAbsolutePath(prefix);
  return pre === '/' || p === pre || p.startsWith(`${pre}/`);
}
