// state_dir/agent.pid: which process runs the agent on a state_dir, if any; and
// state_dir/agent.port: the port its listener took, when http.listen asked for any (port 0).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load.js';

export const pidFile = (config: Config) => path.join(config.state_dir, 'agent.pid');
export const portFile = (config: Config) => path.join(config.state_dir, 'agent.port');

/**
 * The pid of the agent running on this config's state_dir, or undefined. A pid file
 * left by a crash may name a process that reused the number: only one whose command
 * line is a `run` of stevedore counts.
 */
export async function runningAgent(config: Config): Promise<number | undefined> {
  const text = await readFile(pidFile(config), 'utf8').catch(() => undefined);
  const pid = Number(text?.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.includes('run') && argv.some((arg) => /stevedore|cli\.js$/.test(arg)) ? pid : undefined;
}
