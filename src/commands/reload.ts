// `stevedore reload`: checks the config file (cli.ts loads it), then sends SIGHUP to the
// agent running on its state_dir.
import type { Config } from '../config/load.js';
import { StevedoreError } from '../errors.js';
import { EXIT } from './exit.js';
import { pidFile, runningAgent } from './pid.js';

export async function reload(config: Config): Promise<number> {
  const pid = await runningAgent(config);
  if (pid === undefined) throw new StevedoreError('AGENT_UNREACHABLE', `no agent runs on ${config.state_dir} (see ${pidFile(config)})`);
  process.kill(pid, 'SIGHUP');
  process.stdout.write(`sent SIGHUP to the agent (pid ${pid}); its log says what the reload changed\n`);
  return EXIT.ok;
}
