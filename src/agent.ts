// The composition root: config in, a running agent out. Nothing here does I/O until
// start(); close() undoes start() in reverse.
import { chmod, mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { StevedoreError } from './errors.js';
import { RESTART_HTTP_KEYS, planReload, type ReloadPlan } from './config/reload.js';
import { isFleet } from './config/schema.js';
import { fileOptionsFor } from './config/resolve.js';
import { createHttpServer, type HttpServer } from './ingest/http.js';
import type { HttpOptions } from './ingest/types.js';
import { createIntake } from './ingest/intake.js';
import { startExpiry, type Expiry } from './ingest/tus/expiry.js';
import { createUploadFiles } from './ingest/tus/records.js';
import { createTusEndpoint } from './ingest/tus/endpoint.js';
import { UploadStore } from './ingest/tus/store.js';
import { createWatch, type Watch } from './ingest/watch/watch.js';
import { createEventStreams } from './observe/events.js';
import { createMetrics } from './observe/metrics.js';
import { cachedCounts, createOperations } from './observe/operations.js';
import { createOutOfFilesAlarm } from './open-files.js';
import { createRegistry, type Registry } from './queue/registry.js';
import { createScheduler, type Settlement } from './queue/scheduler.js';
import { newTask, type Task } from './task.js';
import { createDeadLetter } from './spool/dead-letter.js';
import { createJournal } from './spool/journal.js';
import { checkFree } from './spool/receive.js';
import { recover } from './spool/recover.js';
import { createRetainStore } from './spool/retain.js';
import { createSettlement, settleDelivery } from './spool/settle.js';
import { createSpool } from './spool/spool.js';
import { createStateDir } from './spool/state-dir.js';
import { createFleets, type FleetsOptions } from './targets/fleet/fleets.js';
import { containerName, createStagingLedger, createTarget, followFleet } from './targets/index.js';
import type { Target } from './targets/target.js';

export interface Agent {
  /** Recovers the journal, then starts pushing, listening and watching. Resolves with the HTTP address, if any. */
  start(): Promise<AddressInfo | undefined>;
  /** Stops intake, lets pushes finish for queue.shutdown_grace, keeps the rest journaled. */
  close(): Promise<void>;
  readonly registry: Registry;
  readonly watches: readonly Watch[];
  /**
   * Applies a new config in place (SIGHUP): targets, routes, watches, defaults, log
   * level. Queued tasks keep going. Answers what changed and what needs a restart.
   */
  reload(next: Config): Promise<ReloadPlan>;
}

export interface AgentOptions {
  logger: Logger;
  /** Builds each target's adapter (a fleet's member's too); tests pass a failing runtime here. */
  createTarget?: typeof createTarget;
  /** Follows a fleet's members; tests pass a stand-in for a runtime here. */
  createMembership?: FleetsOptions['createMembership'];
}

/** min_free lives under `http`; a watch-only agent keeps the same margin. */
const DEFAULT_MIN_FREE = 2 ** 30;
const DEFAULT_UPLOAD_EXPIRY = 24 * 3600_000;

export function createAgent(config: Config, { logger, createTarget: makeTarget = createTarget, createMembership = (name, fleet) => followFleet(name, fleet, logger) }: AgentOptions): Agent {
  let current = config;
  const spool = createSpool(path.join(config.state_dir, 'spool'));
  const deadLetter = createDeadLetter(path.join(config.state_dir, 'dead-letter'));
  const notes = path.join(config.state_dir, 'staging-notes');
  const ledger = createStagingLedger(notes, logger);
  const journal = createJournal({ file: path.join(config.state_dir, 'journal.log'), syncDirs: [spool.dir], logger });
  // Resumable uploads still coming in: beside the spool, on its file system (finish.ts links them in).
  const uploadsDir = path.join(config.state_dir, 'uploads');
  const stateDir = createStateDir({ dir: config.state_dir, subdirs: [spool.dir, uploadsDir, deadLetter.dir, notes], journal, logger });
  const registry = createRegistry({ logger });
  const targets = new Map<string, Target>();
  let closing = false;
  const shutdown = new AbortController();
  const outOfFiles = createOutOfFilesAlarm(logger);
  let http: HttpServer | undefined;
  const deadLetterCounts = cachedCounts(deadLetter);

  // Watches stopped by a reload stay here until the end: their tasks still settle through them.
  const retired: Watch[] = [];
  const settleTask = createSettlement({ journal, spool, deadLetter, stateDir, logger, signal: shutdown.signal });
  const retain = createRetainStore(path.join(config.state_dir, 'retain'), config.retain_max, logger);
  const sourcePath = (task: Task) => (task.retained ? retain.path(task.sha256) : spool.path(task.staged));
  const settle = async (task: Task, how: Settlement) => {
    // Once a task's end is journaled nothing recovers its file: its retained version must be saved first.
    if (task.options.retain && !task.retained) await retain.flush();
    await settleTask(task, how);
    if (how === 'failed') deadLetterCounts.forget();
    if (how === 'done' && task.kind === 'delete') retain.forget(task.target, task.dest, task.origin?.dir);
    fleets.settled(task, how);
    // The watch that made it: after a reload that moved a watch's files (another dest or
    // target), the one of that name retired, not the new one (whose mirror state would
    // record the file as pushed to its own place, and never push it there). A task
    // journaled before a restart that moved them has only the new one, by name.
    const all = [...watches, ...retired];
    const origin = task.origin;
    if (origin) await (all.find((w) => w.owns(task)) ?? all.find((w) => w.name === origin.watch))?.settled(task, how);
  };
  // A file a fleet's later members must get: its newest version is kept (spool/retain.ts).
  const keepRetained = async (tasks: readonly Task[]) => {
    for (const task of tasks) {
      if (!task.options.retain || task.kind !== 'put' || fleets.members(task.target) === undefined) continue;
      await retain.keep(task, spool.path(task.staged)).catch((error: unknown) => logger.warn({ taskId: task.id, target: task.target, dest: task.dest, err: error }, 'could not keep a retained version: a member joining later will not get it'));
    }
  };
  // Its sources are read at scrape time, once everything below exists.
  const metrics = createMetrics({
    queueDepth: () => scheduler.size,
    inFlight: () => scheduler.inFlight,
    targets: () => scheduler.targetStates(),
    targetNames: () => Object.keys(current.targets),
    spoolFreeBytes: () => spool.freeBytes(),
    watchPaths: () => watches.map((watch) => ({ name: watch.name, paths: watch.status().paths })),
    deadLetters: deadLetterCounts.get,
    fleetMembers: () => fleets.status().map((fleet) => ({ target: fleet.name, members: fleet.members })),
    uploads: () => (http ? uploads.status() : undefined),
  });
  const scheduler = createScheduler({
    ...schedulerLimits(config),
    logger,
    registry,
    getTarget: (name, member) => (member === undefined ? targets.get(name) : fleets.target(name, member)),
    fleet: (name) => fleets.members(name),
    sourcePath,
    settle,
    settleDelivery: async (child, outcome, memberId) => {
      await settleDelivery(child, outcome, memberId, { journal, spool, deadLetter }, sourcePath(child));
      if (outcome === 'failed') deadLetterCounts.forget();
    },
    observer: metrics,
  });
  const fleets = createFleets({
    dir: path.join(config.state_dir, 'fleets'),
    logger,
    retain,
    queue: scheduler,
    createMembership,
    memberTarget: (name, fleet, member) => makeTarget(name, fleet, logger, ledger, member),
  });
  const minFree = config.http?.min_free ?? DEFAULT_MIN_FREE;
  const intake = createIntake({ spool, journal, stateDir, scheduler, minFree, isClosing: () => closing, onAccepted: metrics.ingested, beforeQueue: keepRetained });
  const uploads = new UploadStore({ files: createUploadFiles(uploadsDir), intake, spool, logger, expiry: () => current.http?.upload_expiry ?? DEFAULT_UPLOAD_EXPIRY, observer: metrics });
  const tus = createTusEndpoint(uploads);
  let expiry: Expiry | undefined;
  // state_dir never changes in a running agent (a reload says it needs a restart).
  // A mirror into a fleet always keeps its files' versions: a new member gets its content.
  const makeWatch = (w: Config['watch'][number], defaults: Config['defaults']) => {
    const retained = w.retain || (w.mode === 'mirror' && isFleet(current.targets[w.target]));
    return createWatch({ config: w, options: fileOptionsFor(defaults, { ...w, mode: w.file_mode, retain: retained }, w.dest), intake, stateDir: path.join(config.state_dir, 'watch'), logger, outOfFiles });
  };
  let watches = config.watch.map((w) => makeWatch(w, config.defaults));

  // Well inside http.idle_timeout, which would cut a quiet stream.
  const events = createEventStreams({ registry, heartbeatMs: Math.min(15_000, (config.http?.idle_timeout ?? 60_000) / 2) });
  const ops = createOperations({
    config: () => current,
    watches: () => watches,
    scheduler,
    registry,
    spool,
    journal,
    deadLetter,
    metrics,
    deadLetterCounts,
    receiving: () => http?.receiving(),
    fleets: () => fleets.status(),
    uploads: () => (http ? uploads.status() : undefined),
    events,
    logger,
    startedAt: new Date(),
  });

  const readiness = async () => {
    const problems = scheduler.downTargets().map((name) => `target ${name} is down`);
    for (const w of watches.map((watch) => watch.status())) {
      if (w.state === 'missing' || w.state === 'failed') problems.push(w.error ?? `watch ${w.name}: ${w.path} is ${w.state}`);
    }
    if (closing) problems.push('shutting down');
    const unusable = await stateDir.problem();
    if (unusable !== undefined) return [...problems, unusable];
    await checkFree(spool, minFree).catch((error: Error) => problems.push(error.message));
    return problems;
  };

  return {
    registry,
    get watches() {
      return watches;
    },
    async start() {
      for (const [name, target] of Object.entries(config.targets)) if (!isFleet(target)) targets.set(name, makeTarget(name, target, logger, ledger));
      await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
      await chmod(config.state_dir, 0o700);
      await Promise.all([spool.init(), deadLetter.init(), ledger.open()]);
      await uploads.open();
      for (const name of ledger.targets().filter((t) => !targets.has(t))) {
        logger.warn({ target: name, left: ledger.leftovers(name) }, 'an interrupted push left staging directories (.stevedore-TAG) in a target that is no longer configured: remove them by hand');
        await Promise.all(ledger.leftovers(name).map((note) => ledger.clear(name, note.tag)));
      }
      await retain.open();
      // Members first: the tasks recovered next get one delivery per member at once.
      await fleets.configure(config.targets);
      const known = (name: string) => targets.has(name) || isFleet(config.targets[name]);
      const { requeued, failed, restage } = await recover({ records: await journal.open(), spool, deadLetter, journal, logger, known });
      failed.forEach((task) => registry.add(task)); // logs it; GET /tasks/<id> tells the client what happened
      const recovered = requeued.map((record) => newTask(record));
      // The retained index is saved once a second: what a crash took from it of tasks
      // still live is kept again here, or members joining later would never get them.
      await keepRetained(recovered);
      recovered.forEach((task) => scheduler.enqueue(task));
      for (const watch of watches) watch.adopt(requeued.flatMap((r) => (r.origin?.watch === watch.name ? [r.origin] : [])));
      let address: AddressInfo | undefined;
      if (config.http) {
        http = createHttpServer(httpOptions(config, { intake, tus, registry, logger, readiness, ops, outOfFiles }));
        address = await http.listen();
        expiry = startExpiry(uploads, logger);
        logger.info({ address: `${address.address}:${address.port}` }, 'listening');
      }
      await Promise.all(watches.map((watch) => watch.start()));
      for (const watch of watches) watch.recheck(restage.filter((o) => o.watch === watch.name).map((o) => o.path));
      return address;
    },
    async reload(next) {
      if (closing) throw new StevedoreError('SHUTTING_DOWN', 'the agent is stopping');
      const plan = planReload(current, next);
      // Only what can change in place moves to `next`; the rest keeps running as it was.
      const applied = keepRunning(current, next, plan.keptTargets);
      for (const name of plan.targets) {
        const target = applied.targets[name] as Config['targets'][string];
        if (isFleet(target)) targets.delete(name);
        else targets.set(name, makeTarget(name, target, logger, ledger));
      }
      await fleets.configure(applied.targets);
      const stopping = watches.filter((w) => plan.stopWatches.includes(w.name));
      await Promise.all(stopping.map((w) => w.close()));
      retired.push(...stopping);
      const starting = next.watch.filter((w) => plan.startWatches.includes(w.name)).map((w) => makeWatch(w, next.defaults));
      watches = [...watches.filter((w) => !stopping.includes(w)), ...starting];
      current = applied;
      if (http && current.http) http.update(httpOptions(current, { intake, tus, registry, logger, readiness, ops, outOfFiles }));
      logger.level = current.log.level;
      await Promise.all(starting.map((w) => w.start()));
      return plan;
    },
    async close() {
      closing = true;
      shutdown.abort(); // a task end still waiting for room stays journaled
      const grace = config.queue.shutdown_grace;
      const deadline = Date.now() + grace;
      const draining = http?.drain(grace); // new requests are answered 503 from now on
      await Promise.all(watches.map((watch) => watch.close()));
      registry.wakeAll(); // Prefer: wait requests answer 202 now instead of holding the grace
      expiry?.stop();
      events.close();
      await draining;
      await scheduler.close(Math.max(0, deadline - Date.now()));
      await http?.close(); // new requests were answered 503 until the pushes drained
      await fleets.close();
      await retain.close();
      // Pushes that finished while the queue drained updated mirror state after close().
      await Promise.all([...watches, ...retired].map((watch) => watch.flush()));
      stateDir.close();
      await journal.close();
      logger.info({ unfinished: journal.liveCount }, 'stopped; unfinished tasks stay in the journal');
    },
  };
}

function schedulerLimits(config: Config) {
  const { capacity, concurrency, per_target: perTarget, batch_files: batchFiles, batch_bytes: batchBytes } = config.queue;
  return { capacity, concurrency, perTarget, batchFiles, batchBytes };
}

type HttpDeps = Pick<HttpOptions, 'intake' | 'tus' | 'registry' | 'logger' | 'readiness' | 'ops' | 'outOfFiles'>;

function httpOptions(config: Config, deps: HttpDeps): HttpOptions {
  const http = config.http as NonNullable<Config['http']>;
  const routes = http.routes.map((r) => ({ ...r, options: fileOptionsFor(config.defaults, r, r.dest) }));
  const legacy = http.legacy.map((rule) => ({
    target: rule.target,
    container: containerName(rule.target, config.targets[rule.target] as NonNullable<Config['targets'][string]>),
    pathPrefix: rule.path_prefix,
    token: rule.token,
    options: fileOptionsFor(config.defaults, {}, rule.path_prefix),
  }));
  const browser = { allowedHosts: http.allowed_hosts, allowedOrigins: http.allowed_origins };
  const receiving = { maxReceiving: http.max_receiving, minRate: http.min_rate, capacity: config.queue.capacity };
  return { listen: http.listen, maxBody: http.max_body, idleTimeout: http.idle_timeout, receiving, routes, legacy, ui: http.ui, ...browser, ...deps };
}

/**
 * `next`, but with what a reload cannot change (planReload's needRestart: state_dir, the
 * listener and its limits, queue limits, log.format, retain_max, `kept` targets) as it
 * runs now: the next reload is planned against what runs, not against what was asked.
 */
function keepRunning(running: Config, next: Config, kept: readonly string[]): Config {
  const http = running.http && next.http ? { ...next.http, ...Object.fromEntries(RESTART_HTTP_KEYS.map((key) => [key, running.http?.[key]])) } : running.http;
  const targets = { ...next.targets, ...Object.fromEntries(kept.map((name) => [name, running.targets[name]])) } as Config['targets'];
  const log = { ...next.log, format: running.log.format };
  return { ...next, state_dir: running.state_dir, queue: running.queue, retain_max: running.retain_max, log, http, targets };
}
