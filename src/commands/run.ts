// `stevedore run`: the agent until SIGINT/SIGTERM, then a drain; SIGHUP reloads the
// config file in place (SPEC §6). `state_dir/agent.pid` lets `stevedore reload` find it.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { createAgent, type Agent } from '../agent.js';
import { loadConfig, type Config } from '../config/load.js';
import { errorMessage, isStevedoreError } from '../errors.js';
import { createLogger } from '../log.js';
import { EXIT } from './exit.js';

export const pidFile = (config: Config) => path.join(config.state_dir, 'agent.pid');

export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.log);
  const agent = createAgent(config, { logger });
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      // A second signal (systemd and a terminal may both send one) must not cut the drain.
      logger.info({ signal }, stopping ? 'already stopping' : 'stopping: draining in-flight pushes');
      stopping = true;
      resolve();
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
  });
  // Reloads run one after the other: a second SIGHUP waits for the first.
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(() => reload(agent, config.file, logger));
  });
  try {
    await agent.start();
  } catch (error) {
    // Our own errors (e.g. a runtime whose CLI is missing) are a message, not a stack trace.
    logger.fatal(isStevedoreError(error) ? { code: error.code } : { err: error }, `cannot start: ${errorMessage(error)}`);
    await agent.close().catch(() => undefined);
    return EXIT.fatal;
  }
  await writeFile(pidFile(config), `${process.pid}\n`, { mode: 0o600 });
  await stopped;
  await reloading;
  await agent.close();
  await rm(pidFile(config), { force: true });
  return EXIT.ok;
}

async function reload(agent: Agent, file: string, logger: Logger): Promise<void> {
  let next: Config;
  try {
    next = await loadConfig(file);
  } catch (error) {
    // The FILE:LINE:COL lines, one per problem; the running config stays.
    const problems = isStevedoreError(error) ? error.message.split('\n') : [errorMessage(error)];
    logger.error({ file, problems }, 'SIGHUP: the new config is invalid; still running on the old one');
    return;
  }
  try {
    const plan = await agent.reload(next);
    logger.info({ file, ...plan }, plan.needRestart.length > 0 ? `config reloaded; a restart is needed to change ${plan.needRestart.join(', ')}` : 'config reloaded');
  } catch (error) {
    logger.error({ file, err: error }, 'SIGHUP: applying the new config failed part-way');
  }
}
