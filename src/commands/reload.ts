// `stevedore reload`: sends SIGHUP to the agent running on this config's state_dir.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/load.js';
import { StevedoreError, errnoCode } from '../errors.js';
import { EXIT } from './exit.js';
import { pidFile } from './run.js';

export async function reload(config: Config): Promise<number> {
  const file = pidFile(config);
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') throw new StevedoreError('AGENT_UNREACHABLE', `no agent runs on ${config.state_dir} (${file} is missing)`);
    throw error;
  });
  const pid = Number(text.trim());
  try {
    process.kill(pid, 'SIGHUP');
  } catch (error) {
    throw new StevedoreError('AGENT_UNREACHABLE', `the agent (pid ${pid}, from ${file}) is not running: ${errnoCode(error) ?? String(error)}`);
  }
  process.stdout.write(`sent SIGHUP to the agent (pid ${pid}); its log says what the reload changed\n`);
  return EXIT.ok;
}
