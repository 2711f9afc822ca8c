// `stevedore run`: the agent until SIGINT/SIGTERM, then a drain (SPEC §6).
import { createAgent } from '../agent.js';
import type { Config } from '../config/load.js';
import { errorMessage, isStevedoreError } from '../errors.js';
import { createLogger } from '../log.js';
import { EXIT } from './exit.js';

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
  // Node's default for SIGHUP is to die on the spot; reload is not in this version yet.
  process.on('SIGHUP', () => logger.warn('SIGHUP: reloading the config is not supported by this version; still running on the old one'));
  try {
    await agent.start();
  } catch (error) {
    // Our own errors (e.g. a runtime whose CLI is missing) are a message, not a stack trace.
    logger.fatal(isStevedoreError(error) ? { code: error.code } : { err: error }, `cannot start: ${errorMessage(error)}`);
    await agent.close().catch(() => undefined);
    return EXIT.fatal;
  }
  await stopped;
  await agent.close();
  return EXIT.ok;
}
