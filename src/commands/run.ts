// `stevedore run`: the agent until SIGINT/SIGTERM, then a drain; SIGHUP reloads the
// config file in place (SPEC §6). `state_dir/agent.pid` lets `stevedore reload` find it.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { createAgent, type Agent } from '../agent.js';
import { parseListen } from '../config/listen.js';
import { loadConfig, type Config } from '../config/load.js';
import { errnoCode, errorMessage, isStevedoreError } from '../errors.js';
import { createLogger } from '../log.js';
import { EXIT } from './exit.js';
import { pidFile, portFile, runningAgent } from './pid.js';

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
  // Written before recovery starts: `stevedore dead-letter` must not take the store
  // over while this process works on it, even before it listens; and a second agent on
  // this state_dir must not recover the journal from under the first.
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  const other = await claimStateDir(config);
  if (other !== undefined) {
    logger.fatal({ pid: other, state_dir: config.state_dir }, `cannot start: another agent (pid ${other}) runs on ${config.state_dir}`);
    return EXIT.fatal;
  }
  // Reloads wait for the start and run one after the other; none once stopping began.
  let started = false;
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    if (!started || stopping) {
      logger.warn({ signal: 'SIGHUP' }, started ? 'SIGHUP while stopping: ignored' : 'SIGHUP while starting: ignored; send it again once the agent is listening');
      return;
    }
    reloading = reloading.then(() => reload(agent, config.file, logger));
  });
  try {
    const address = await agent.start();
    // Port 0 takes any: the commands that ask the agent read which one here.
    if (address && config.http && parseListen(config.http.listen).port === 0) await writeFile(portFile(config), `${address.port}\n`, { mode: 0o600 });
    started = true;
  } catch (error) {
    // Our own errors (e.g. a runtime whose CLI is missing) are a message, not a stack trace.
    logger.fatal(isStevedoreError(error) ? { code: error.code } : { err: error }, `cannot start: ${errorMessage(error)}`);
    await agent.close().catch(() => undefined);
    await releaseStateDir(config);
    return EXIT.fatal;
  }
  await stopped;
  const deadline = stopDeadline(config, logger);
  await reloading;
  await agent.close();
  clearTimeout(deadline);
  await releaseStateDir(config);
  return EXIT.ok;
}

const releaseStateDir = (config: Config) => Promise.all([pidFile(config), portFile(config)].map((file) => rm(file, { force: true })));

/**
 * Writes state_dir/agent.pid unless another agent runs there (its pid is answered). The
 * file is created exclusively; one left by an agent that is gone is replaced (two agents
 * started within the same instant over such a file could both take it: a service
 * manager starts one).
 */
async function claimStateDir(config: Config): Promise<number | undefined> {
  const mine = `${process.pid}\n`;
  try {
    await writeFile(pidFile(config), mine, { mode: 0o600, flag: 'wx' });
    return undefined;
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw error;
  }
  const other = await runningAgent(config);
  if (other !== undefined && other !== process.pid) return other;
  await writeFile(pidFile(config), mine, { mode: 0o600 });
  return undefined;
}

// What a stop waits for is bounded (pushes by shutdown_grace, a watched file's read
// never blocks), but a stop must end even if something is stuck: the service manager
// is waiting, and would SIGKILL the agent at TimeoutStopSec anyway. Exit 1: not clean.
const STOP_MARGIN = 10_000;

function stopDeadline(config: Config, logger: Logger): NodeJS.Timeout {
  const after = config.queue.shutdown_grace + STOP_MARGIN;
  return setTimeout(() => {
    logger.fatal({ afterMs: after }, 'the drain did not end within queue.shutdown_grace + 10s; exiting now (unfinished tasks stay in the journal)');
    process.exit(EXIT.fatal);
  }, after).unref();
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
