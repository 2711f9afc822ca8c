// YAML text → ${VAR} interpolation → zod validation → frozen Config. Every problem is
// collected and reported at once as `FILE:LINE:COL: key: message`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, isMap, isNode, isPair, isScalar, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { StevedoreError, errorMessage } from '../errors.js';
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
    const lines = problems.map((p) => `${file}:${p.line}:${p.col}: ${p.key ? `${p.key}: ` : ''}${p.message}`);
    super('CONFIG_INVALID', lines.join('\n'), { details: { file, problems } });
  }
}

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new StevedoreError('CONFIG_UNREADABLE', `${file}: cannot read the config file: ${errorMessage(error)}`, { cause: error });
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => lineCounter.linePos(offset);
  const problems: ConfigProblem[] = doc.errors.map((e) => ({ ...at(e.pos[0]), key: '', message: firstLine(e.message) }));
  if (problems.length > 0) throw new ConfigError(file, problems);

  problems.push(...interpolate(doc, env, at));
  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) problems.push(...result.error.issues.flatMap((issue) => locateIssue(doc, issue, at)));
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems.sort(byPosition));
  return deepFreeze({ ...resolvePaths(result.data, path.dirname(path.resolve(file))), file: path.resolve(file) });
}

// Replaces ${NAME} and ${NAME:-default} in scalar values (never keys, never YAML
// structure: a variable cannot inject new keys). `$${` escapes a literal `${`.
function interpolate(doc: Document, env: NodeJS.ProcessEnv, at: (o: number) => { line: number; col: number }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(/\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (match, name: string, fallback?: string) => {
        if (match.startsWith('$$')) return match.slice(1);
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problems.push({ ...at(node.range?.[0] ?? 0), key: '', message: `environment variable ${name} is not set (use \${${name}:-default} for a default)` });
        return match;
      });
    },
  });
  return problems;
}

function locateIssue(doc: Document, issue: z.core.$ZodIssue, at: (o: number) => { line: number; col: number }): ConfigProblem[] {
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
  return keys.map((unknownKey) => {
    const issuePath = unknownKey === undefined ? issue.path : [...issue.path, unknownKey];
    const key = issuePath.map(String).join('.');
    const message = unknownKey === undefined ? issue.message : 'unknown key';
    return { ...at(findOffset(doc, issuePath)), key, message };
  });
}

// Offset of the deepest node that exists along `issuePath`: the key itself for a map
// entry (so unknown and invalid keys point at their line), else the nearest parent.
function findOffset(doc: Document, issuePath: PropertyKey[]): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const segment of issuePath) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      offset = (isNode(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
      if (isScalar(node)) offset = node.range?.[0] ?? offset;
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
const byPosition = (a: ConfigProblem, b: ConfigProblem) => a.line - b.line || a.col - b.col;
