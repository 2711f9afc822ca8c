// What the conformance cases share: staged files to push, a push with a deadline, its
// results as codes and kinds, environment and PATH changes for one test, and logs to read.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { createLogger } from '../../src/log.js';
import { failureKind, type PushItem, type PushResult, type PutItem, type Target } from '../../src/targets/target.js';
import { wrapCli, type WrapOptions } from './runtimes.js';

export const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

let counter = 0;
/** Stages `content` in `dir` and answers a put of it to `dest`. */
export async function put(dir: string, dest: string, content: string | Buffer, extra: Partial<PutItem> = {}): Promise<PutItem> {
  const source = path.join(dir, `staged-${(counter += 1)}`);
  await writeFile(source, content);
  return { op: 'put', id: `t${counter}`, source, dest, bytes: Buffer.byteLength(content), mode: 0o644, dirMode: 0o755, ...extra };
}

export const push = (target: Target, items: PushItem[], ms = 60_000): Promise<PushResult[]> => target.push(items, AbortSignal.timeout(ms));

export const codes = (results: PushResult[]) => results.map((r) => (r.ok ? 'ok' : r.error.code));
/** Each result's code and message, for an assertion's failure output (an error's message is not in its JSON). */
export const told = (results: PushResult[]) => results.map((r) => (r.ok ? 'ok' : `${r.error.code}: ${r.error.message}`)).join('; ');
export const kindOf = (result: PushResult | undefined) => (result && !result.ok ? failureKind(result.error) : 'ok');

/** Sets environment variables for the rest of the test (the CLIs inherit them). */
export function setEnv(vars: Record<string, string>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  Object.assign(process.env, vars);
  onTestFinished(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) Reflect.deleteProperty(process.env, key);
      else process.env[key] = value;
    }
  });
}

/** Puts a wrapper named like the runtime's CLI first on PATH; answers the file it logs each call to. */
export async function countCalls(command: string, options?: WrapOptions): Promise<string> {
  const { dir, log } = await wrapCli(command, options);
  setEnv({ PATH: `${dir}:${process.env.PATH ?? ''}` });
  return log;
}

/** A logger whose lines a test can read. */
export function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', format: 'json' }, sink) };
}

// A route's dest is the operator's; what lies below it may be planted by whoever runs
// the place. Links: evil → /outside, dangling → /outside/new, real/up → /srv (all
// outside the route), inner → real (inside it), file-link → /outside/victim.
export const plantLinks = 'mkdir -p "$R"/srv/route/real "$R"/outside && echo keep > "$R"/outside/victim && cd "$R"/srv/route && ln -s "$R"/outside evil'
  + ' && ln -s "$R"/outside/new dangling && ln -s ../.. real/up && ln -s "$R"/srv/route/real inner && ln -s "$R"/outside/victim file-link';
export const outsideUntouched = 'ls -A "$R"/outside; cat "$R"/outside/victim; ls "$R"/srv/etc 2>&1 >/dev/null | wc -l; find "$R"/srv "$R"/outside -name ".stevedore-*" | wc -l';
