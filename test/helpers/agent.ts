// Starts a real agent (real spool, journal, HTTP listener on port 0, local target in a
// temp dir) from YAML text, the way `stevedore run` would.
import path from 'node:path';
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { createAgent, type Agent, type AgentOptions } from '../../src/agent.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from './temp.js';

export interface TestAgent {
  agent: Agent;
  config: Config;
  /** http://127.0.0.1:PORT */
  url: string;
  dir: string;
  stateDir: string;
  /** Host directory of the `box` local target (its "container" root). */
  root: string;
  /** Every log line the agent wrote, parsed. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface StartOptions {
  /** Extra YAML appended under `http:` (indented by the caller by two spaces). */
  http?: string;
  /** Extra top-level YAML. */
  extra?: string;
  /** Reuse a directory (for restart tests). */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  createTarget?: AgentOptions['createTarget'];
  /** A stand-in for a runtime's fleet membership (test/helpers/fleet.ts). */
  createMembership?: AgentOptions['createMembership'];
  /** Extra keys inside the `queue: { shutdown_grace: 2s, … }` flow map, e.g. 'capacity: 1'. */
  queue?: string;
  /** queue.shutdown_grace (default 2s). */
  shutdownGrace?: string;
  /** http.min_free (default 1MiB). */
  minFree?: string;
  /** http.idle_timeout (default 2s). */
  idleTimeout?: string;
  /** Extra targets, YAML lines indented by two spaces (`box`, a local target, is always there). */
  targets?: string;
  /** http.listen (default 127.0.0.1:0); the test still connects over 127.0.0.1. */
  listen?: string;
  /** state_dir (default DIR/state), e.g. on a disk of the test's own. */
  stateDir?: string;
}

export function testConfigYaml(dir: string, { http = '', extra = '', queue, shutdownGrace = '2s', minFree = '1MiB', idleTimeout = '2s', targets = '', listen = '127.0.0.1:0', stateDir = path.join(dir, 'state') }: StartOptions = {}): string {
  return `version: 1
state_dir: ${stateDir}
log: { level: debug, format: json }
targets:
  box: { runtime: local, root: ${path.join(dir, 'box')} }
${targets}
defaults:
  retry: { attempts: 3, initial_delay: 10ms, max_delay: 50ms }
queue: { shutdown_grace: ${shutdownGrace}${queue ? `, ${queue}` : ''} }
${extra}
http:
  listen: ${listen}
  idle_timeout: ${idleTimeout}
  min_free: ${minFree}
  routes:
    - { name: files, path: /drop/files, target: box, dest: /srv/files }
    - { name: secret, path: /drop/secret, target: box, dest: /srv/secret, token: s3cret-token }
${http}
`;
}

export async function startAgent(options: StartOptions = {}): Promise<TestAgent> {
  const t = await launchAgent({ ...options, dir: options.dir ?? (await tempDir()) });
  onTestFinished(t.close);
  return t;
}

/** startAgent without the per-test clean-up: for an agent shared by a describe's tests (close it in afterAll). */
export async function launchAgent(options: StartOptions & { dir: string }): Promise<TestAgent> {
  const { dir } = options;
  const config = parseConfig(testConfigYaml(dir, options), path.join(dir, 'stevedore.yaml'), options.env ?? {});
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const agent = createAgent(config, { logger: createLogger({ level: 'debug', format: 'json' }, sink), createTarget: options.createTarget, createMembership: options.createMembership });
  const address = await agent.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await agent.close();
  };
  return {
    agent,
    config,
    url: `http://127.0.0.1:${address?.port}`,
    dir,
    stateDir: config.state_dir,
    root: path.join(dir, 'box'),
    logs,
    close,
  };
}
