// The composition root: config in, a running agent out. Nothing here does I/O until
// start(); close() undoes start() in reverse.
import { chmod, mkdir, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { fileOptionsFor } from './config/resolve.js';
import { StevedoreError } from './errors.js';
import { createHttpServer, type HttpServer } from './ingest/http.js';
import { createIntake } from './ingest/intake.js';
import { createRegistry, type Registry } from './queue/registry.js';
import { createScheduler, type Scheduler, type Settlement } from './queue/scheduler.js';
import { newTask, type Task, type TaskRecord } from './queue/task.js';
import { createDeadLetter, type DeadLetter } from './spool/dead-letter.js';
import { createJournal, type Journal } from './spool/journal.js';
import { checkFree } from './spool/receive.js';
import { createSpool, type Spool } from './spool/spool.js';
import { containerName, createTarget } from './targets/index.js';
import type { Target } from './targets/target.js';

export interface Agent {
  /** Recovers the journal, then starts pushing and listening. Resolves with the HTTP address, if any. */
  start(): Promise<AddressInfo | undefined>;
  /** Stops intake, lets pushes finish for queue.shutdown_grace, keeps the rest journaled. */
  close(): Promise<void>;
  readonly registry: Registry;
}

export interface AgentOptions {
  logger: Logger;
  /** Builds each target's adapter; tests pass a failing runtime here. */
  createTarget?: typeof createTarget;
}

export function createAgent(config: Config, { logger, createTarget: makeTarget = createTarget }: AgentOptions): Agent {
  const spool = createSpool(path.join(config.state_dir, 'spool'));
  const deadLetter = createDeadLetter(path.join(config.state_dir, 'dead-letter'));
  const journal = createJournal({ file: path.join(config.state_dir, 'journal.log'), syncDirs: [spool.dir], logger });
  const registry = createRegistry({ logger });
  const targets = new Map<string, Target>();
  let closing = false;
  let http: HttpServer | undefined;

  const settle = (task: Task, how: Settlement) => settleTask({ task, how, journal, spool, deadLetter });
  const scheduler = createScheduler({
    ...schedulerLimits(config),
    logger,
    registry,
    getTarget: (name) => targets.get(name),
    sourcePath: (task) => spool.path(task.staged),
    settle,
  });

  return {
    registry,
    async start() {
      for (const [name, target] of Object.entries(config.targets)) targets.set(name, makeTarget(name, target));
      if (config.watch.length > 0) throw new StevedoreError('NOT_SUPPORTED', 'watch: is not supported by this version yet');
      await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
      await chmod(config.state_dir, 0o700);
      await Promise.all([spool.init(), deadLetter.init()]);
      await recover({ records: await journal.open(), spool, deadLetter, journal, scheduler, registry, logger });
      if (!config.http) return undefined;
      http = createHttpServer(httpOptions(config, { scheduler, registry, logger, spool, journal, isClosing: () => closing }));
      const address = await http.listen();
      logger.info({ address: `${address.address}:${address.port}` }, 'listening');
      return address;
    },
    async close() {
      closing = true;
      const grace = config.queue.shutdown_grace;
      const deadline = Date.now() + grace;
      await http?.close(grace);
      await scheduler.close(Math.max(0, deadline - Date.now()));
      await journal.close();
      logger.info({ unfinished: journal.liveCount }, 'stopped; unfinished tasks stay in the journal');
    },
  };
}

function schedulerLimits(config: Config) {
  const { capacity, concurrency, per_target: perTarget, batch_files: batchFiles, batch_bytes: batchBytes } = config.queue;
  return { capacity, concurrency, perTarget, batchFiles, batchBytes };
}

interface HttpDeps {
  scheduler: Scheduler;
  registry: Registry;
  logger: Logger;
  spool: Spool;
  journal: Journal;
  isClosing(): boolean;
}

function httpOptions(config: Config, deps: HttpDeps) {
  const http = config.http as NonNullable<Config['http']>;
  const { scheduler, spool } = deps;
  const intake = createIntake({ spool, journal: deps.journal, scheduler, minFree: http.min_free, isClosing: deps.isClosing });
  const routes = http.routes.map((r) => ({ ...r, options: fileOptionsFor(config.defaults, r) }));
  const legacy = http.legacy.map((rule) => ({
    target: rule.target,
    container: containerName(rule.target, config.targets[rule.target] as NonNullable<Config['targets'][string]>),
    pathPrefix: rule.path_prefix,
    token: rule.token,
    options: fileOptionsFor(config.defaults),
  }));
  const readiness = async () => {
    const problems = scheduler.downTargets().map((name) => `target ${name} is down`);
    if (deps.isClosing()) problems.push('shutting down');
    await checkFree(spool, http.min_free).catch((error: Error) => problems.push(error.message));
    return problems;
  };
  return { listen: http.listen, maxBody: http.max_body, idleTimeout: http.idle_timeout, routes, legacy, intake, registry: deps.registry, logger: deps.logger, readiness };
}

interface SettleArgs {
  task: Task;
  how: Settlement;
  journal: Journal;
  spool: Spool;
  deadLetter: DeadLetter;
}

// The staged file goes only after the journal says the task is over: a crash in
// between leaves an orphan that the next start sweeps, never a task without data.
async function settleTask({ task, how, journal, spool, deadLetter }: SettleArgs): Promise<void> {
  if (how === 'failed') {
    // The scheduler announces `failed` only after this, but task.json must say it already.
    await deadLetter.put({ ...task, status: 'failed' }, task.kind === 'put' ? spool.path(task.staged) : undefined, task.error?.message ?? 'failed');
    await journal.append({ op: 'dead', id: task.id });
    return;
  }
  await journal.append({ op: 'done', id: task.id });
  if (task.kind === 'put') await spool.remove(task.staged);
}

interface RecoverArgs {
  records: TaskRecord[];
  spool: Spool;
  deadLetter: DeadLetter;
  journal: Journal;
  scheduler: Scheduler;
  registry: Registry;
  logger: Logger;
}

async function recover({ records, spool, deadLetter, journal, scheduler, registry, logger }: RecoverArgs): Promise<void> {
  const keep = new Set<string>();
  for (const record of records) {
    if (record.kind === 'delete' || (await spool.verify(record.staged, record.bytes, record.sha256))) {
      keep.add(record.staged);
      scheduler.enqueue(newTask(record));
    } else if (await deadLetter.has(record.id)) {
      await journal.append({ op: 'dead', id: record.id });
    } else {
      await deadLetterBroken(record, { spool, deadLetter, journal, registry });
    }
  }
  const orphans = await spool.sweep(keep);
  logger.info({ requeued: keep.size, orphansRemoved: orphans }, 'recovered the journal');
}

// A journaled file that is gone or does not match its checksum: cut by a crash before
// it was acknowledged (its fsync runs beside the journal's), or damaged since. Either
// way it is kept for a human in the dead-letter store, never silently dropped.
async function deadLetterBroken(record: TaskRecord, { spool, deadLetter, journal, registry }: Omit<RecoverArgs, 'records' | 'scheduler' | 'logger'>): Promise<void> {
  const task = newTask(record);
  const present = await stat(spool.path(record.staged)).then(() => true, () => false);
  const code = present ? 'STAGED_CORRUPT' : 'STAGED_MISSING';
  const message = present ? 'the staged file does not match its checksum' : 'the staged file is missing from the spool';
  Object.assign(task, { status: 'failed', error: { code, message } });
  await deadLetter.put(task, spool.path(record.staged), message);
  await journal.append({ op: 'dead', id: record.id });
  registry.add(task); // logs it, and GET /tasks/<id> can tell the client what happened
}
