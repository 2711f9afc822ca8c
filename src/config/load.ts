// YAML text → ${VAR} interpolation → zod validation → frozen Config. Every problem is
// collected and reported at once as `FILE:LINE:COL: key: message`.
import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, isAlias, isMap, isNode, isPair, isScalar, isSeq, parse, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { StevedoreError, errorMessage } from '../errors.js';
import { checkHostPaths } from './host-paths.js';
import { configSchema, type ParsedConfig } from './schema.js';

export type Config = DeepReadonly<ParsedConfig> & { readonly file: string };
type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

export interface ConfigProblem {
  line: number;
  col: number;
  key: string;
  message: string;
}

/** Thrown with every problem found; `message` is the printable `FILE:LINE:COL: …` list. */
export class ConfigError extends StevedoreError {
  constructor(readonly file: string, readonly problems: ConfigProblem[]) {
    // One line per problem (SPEC §1): a quoted key such as "a\nb" must not start a line of its own.
    const lines = problems.map((p) => oneLine(`${file}:${p.line}:${p.col}: ${p.key ? `${p.key}: ` : ''}${p.message}`));
    super('CONFIG_INVALID', lines.join('\n'), { details: { file, problems } });
  }
}

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new StevedoreError('CONFIG_UNREADABLE', `${file}: cannot read the config file: ${errorMessage(error)}`, { cause: error });
  }
  // Decoding would turn each bad byte into U+FFFD quietly: a path or name not as written.
  if (!isUtf8(bytes)) throw new ConfigError(file, [{ ...firstBadByte(bytes), key: '', message: 'not valid UTF-8: save the config file as UTF-8' }]);
  return parseConfig(bytes.toString('utf8'), file, env, { onHost: true });
}

// The position of the first byte that is not UTF-8: the prefixes that end where a
// character starts are valid up to it and invalid past it, so a binary search finds it.
function firstBadByte(bytes: Buffer): { line: number; col: number } {
  const starts = [0];
  for (let i = 1; i <= bytes.length; i += 1) if (i === bytes.length || ((bytes[i] ?? 0) & 0xc0) !== 0x80) starts.push(i);
  let [low, high] = [0, starts.length - 1];
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (isUtf8(bytes.subarray(0, starts[mid]))) low = mid;
    else high = mid - 1;
  }
  const before = bytes.subarray(0, starts[low]).toString('utf8');
  return { line: before.split('\n').length, col: before.length - before.lastIndexOf('\n') };
}

export interface ParseOptions {
  /** Also look at the host: watched folders must exist, and symlinks are read before host directories are compared. */
  onHost?: boolean;
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, { onHost = false }: ParseOptions = {}): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => lineCounter.linePos(offset);
  const problems: ConfigProblem[] = doc.errors.map((e) => ({ ...at(e.pos[0]), key: '', message: firstLine(e.message) }));
  problems.push(...checkStructure(doc, at));
  if (problems.length > 0) throw new ConfigError(file, problems.sort(byPosition));

  problems.push(...interpolate(doc, env, at));
  let data: unknown;
  try {
    data = doc.toJS() ?? {};
  } catch (error) {
    // e.g. "Excessive alias count" (a billion-laughs document): still a config error.
    throw new ConfigError(file, [...problems, { ...at(0), key: '', message: firstLine(errorMessage(error)) }].sort(byPosition));
  }
  const result = configSchema.safeParse(data, { error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined) });
  if (!result.success) problems.push(...result.error.issues.flatMap((issue) => locateIssue(doc, issue, at)));
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems.sort(byPosition));
  const config = resolvePaths(result.data, path.dirname(path.resolve(file)));
  problems.push(...checkHostPaths(config, onHost).map(({ path: keyPath, message }) => ({ ...at(findOffset(doc, keyPath)), key: keyPath.join('.'), message })));
  if (problems.length > 0) throw new ConfigError(file, problems.sort(byPosition));
  return deepFreeze({ ...config, file: path.resolve(file) });
}

// Valid YAML that still cannot be a config, caught before toJS() (which would throw, or
// warn and stringify): keys that are not plain scalars, `__proto__` keys, and aliases
// with no anchor before them.
function checkStructure(doc: Document, at: (o: number) => { line: number; col: number }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const anchors = new Set<string>();
  visit(doc, {
    Pair(_key, pair, ancestors) {
      const offset = (isNode(pair.key) ? pair.key.range?.[0] : undefined) ?? (isNode(pair.value) ? pair.value.range?.[0] : undefined);
      const where = { ...at(offset ?? 0), key: keyPath(ancestors, null) };
      if (pair.key === null || (isScalar(pair.key) && pair.key.value === null && !pair.key.source)) {
        problems.push({ ...where, message: 'empty key' });
      } else if (!isScalar(pair.key)) {
        problems.push({ ...where, message: 'keys must be plain names, not collections or aliases' });
      } else if (pair.key.value === '__proto__') {
        problems.push({ ...where, key: where.key ? `${where.key}.__proto__` : '__proto__', message: 'not allowed as a key' });
      }
    },
    Node(_key, node) {
      if (isAlias(node) && !anchors.has(node.source)) {
        problems.push({ ...at(node.range?.[0] ?? 0), key: '', message: `alias *${node.source} has no anchor &${node.source} before it` });
      } else if (!isAlias(node) && node.anchor) anchors.add(node.anchor);
    },
  });
  return problems;
}

// Replaces ${NAME} and ${NAME:-default} in scalar values (never keys, never YAML
// structure: a variable cannot inject new keys). `$${` escapes a literal `${`; any
// other `${` that is not a well-formed reference is an error, not left as-is.
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}$]|\$(?!\{))*))?\}|\$\{[^}]*\}?/g;

function interpolate(doc: Document, env: NodeJS.ProcessEnv, at: (o: number) => { line: number; col: number }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const problem = (message: string) => problems.push({ ...at(node.range?.[0] ?? 0), key: keyPath(ancestors, key), message });
      node.value = node.value.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
        if (match === '$${') return '${';
        if (name === undefined) {
          problem(`malformed reference "${match.slice(0, 40)}": expected \${NAME} or \${NAME:-default} (write $\${ for a literal \${)`);
          return match;
        }
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problem(`environment variable ${name} is not set (use \${${name}:-default} for a default)`);
        return match;
      });
      // An unquoted `${CAP:-10}` means what an unquoted 10 would: a number (or a boolean).
      if (node.type === 'PLAIN') node.value = plainScalar(node.value as string);
    },
  });
  return problems;
}

// Only when the number reads back as the same text: "0123", "1e3" or a 20-digit token
// stay strings (a token must never change on its way in).
function plainScalar(text: string): unknown {
  const value: unknown = parse(text);
  return (typeof value === 'number' || typeof value === 'boolean') && String(value) === text ? value : text;
}

// "http.routes.0.token" for a node reached through `ancestors` (visit()'s path).
function keyPath(ancestors: readonly unknown[], last: number | 'key' | 'value' | null): string {
  const parts: string[] = [];
  ancestors.forEach((ancestor, i) => {
    if (isPair(ancestor)) parts.push(String(isScalar(ancestor.key) ? ancestor.key.value : ancestor.key));
    else if (isSeq(ancestor)) {
      const child = ancestors[i + 1];
      parts.push(String(child === undefined ? last : ancestor.items.indexOf(child as never)));
    }
  });
  return parts.join('.');
}

function locateIssue(doc: Document, issue: z.core.$ZodIssue, at: (o: number) => { line: number; col: number }): ConfigProblem[] {
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
  return keys.map((unknownKey) => {
    const issuePath = unknownKey === undefined ? issue.path : [...issue.path, unknownKey];
    const key = issuePath.map(String).join('.');
    // A record's bad key: zod's own message ("Invalid key in record") hides the reason.
    const reason = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    const message = unknownKey === undefined ? reason : 'unknown key';
    return { ...at(findOffset(doc, issuePath, unknownKey !== undefined)), key, message };
  });
}

// Offset of the deepest node that exists along `issuePath`: a scalar value itself, the
// key of a map entry whose value is a collection, else the nearest parent. With `atKey`
// the last segment points at its key (unknown keys), never at the value.
function findOffset(doc: Document, issuePath: PropertyKey[], atKey = false): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const [i, segment] of issuePath.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      offset = (isNode(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
      if (isScalar(node) && !(atKey && i === issuePath.length - 1)) offset = node.range?.[0] ?? offset;
    } else if (isNode(node) && 'items' in node && Array.isArray(node.items) && typeof segment === 'number') {
      node = node.items[segment];
      if (!isNode(node)) break;
      offset = node.range?.[0] ?? offset;
    } else break;
  }
  return offset;
}

// Relative host paths are relative to the config file, as in docker compose.
function resolvePaths(config: ParsedConfig, base: string): ParsedConfig {
  const abs = (p: string) => path.resolve(base, p);
  const targets = Object.fromEntries(
    Object.entries(config.targets).map(([name, t]) => [name, t.runtime === 'local' ? { ...t, root: abs(t.root) } : t]),
  );
  const watch = config.watch.map((w) => ({ ...w, path: abs(w.path), after_push: w.after_push === null ? null : abs(w.after_push) }));
  return { ...config, state_dir: abs(config.state_dir), targets, watch };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const firstLine = (text: string) => text.split('\n')[0] ?? text;
const oneLine = (text: string) => text.replace(/[\r\n\u2028\u2029]/g, (c) => ({ '\r': '\\r', '\n': '\\n' })[c] ?? `\\u${c.charCodeAt(0).toString(16)}`);
const byPosition = (a: ConfigProblem, b: ConfigProblem) => a.line - b.line || a.col - b.col;
