// Prometheus metrics (GET /metrics). Counters are told by the queue and the intake as
// things happen; gauges read their sources at scrape time. One registry per agent, so
// that two agents in one process (tests) never share counts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SchedulerObserver, TargetState } from '../queue/scheduler.js';
import type { Task } from '../task.js';
import type { UploadObserver, UploadsStatus } from '../ingest/tus/store.js';

export interface MetricSources {
  queueDepth(): number;
  inFlight(): number;
  targets(): readonly Pick<TargetState, 'name' | 'up'>[];
  /** Every configured target, so that each has a series from the start. */
  targetNames(): readonly string[];
  spoolFreeBytes(): Promise<number>;
  watchPaths(): readonly { name: string; paths: number }[];
  deadLetters(): Promise<ReadonlyMap<string, number>>;
  /** Each fleet's members now. */
  fleetMembers(): readonly { target: string; members: readonly { name: string; running: boolean }[] }[];
  /** Resumable uploads not finished; undefined without a listener. */
  uploads(): UploadsStatus | undefined;
}

export interface Metrics extends SchedulerObserver, UploadObserver {
  /** Bytes of files accepted (HTTP bodies, watched files staged). */
  ingested(tasks: readonly Task[]): void;
  render(): Promise<string>;
  readonly contentType: string;
}

export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const tasks = new Counter({ name: 'stevedore_tasks_total', help: 'Tasks that ended, by how', labelNames: ['source', 'target', 'outcome'], registers });
  const duration = new Histogram({
    name: 'stevedore_push_duration_seconds',
    help: 'Time of one push (a batch) into a target',
    labelNames: ['target'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const pushedBytes = new Counter({ name: 'stevedore_bytes_pushed_total', help: 'Bytes landed in targets', labelNames: ['target'], registers });
  const ingestBytes = new Counter({ name: 'stevedore_ingest_bytes_total', help: 'Bytes accepted into the spool', labelNames: ['source'], registers });
  const uploadBytes = new Counter({ name: 'stevedore_upload_bytes_received_total', help: 'Bytes of resumable (tus) uploads written to the spool, resent ones included', registers });
  const expired = new Counter({ name: 'stevedore_uploads_expired_total', help: 'Resumable uploads removed unfinished after http.upload_expiry', registers });
  new Gauge({ name: 'stevedore_uploads_live', help: 'Resumable uploads begun and not finished', registers, collect() { this.set(sources.uploads()?.live ?? 0); } });
  const retries = new Counter({ name: 'stevedore_retries_total', help: 'Tasks sent back to wait, by error code', labelNames: ['target', 'reason'], registers });
  new Gauge({ name: 'stevedore_queue_depth', help: 'Tasks accepted and not yet ended', registers, collect() { this.set(sources.queueDepth()); } });
  new Gauge({ name: 'stevedore_in_flight', help: 'Batches being pushed now', registers, collect() { this.set(sources.inFlight()); } });
  new Gauge({
    name: 'stevedore_target_up',
    help: '1 unless the last push found the target unreachable',
    labelNames: ['target'],
    registers,
    collect() {
      const down = new Set(sources.targets().filter((t) => !t.up).map((t) => t.name));
      this.reset(); // a target removed by a reload leaves no series behind
      for (const name of sources.targetNames()) this.set({ target: name }, down.has(name) ? 0 : 1);
    },
  });
  new Gauge({
    name: 'stevedore_dead_letter',
    help: 'Files in the dead-letter store',
    labelNames: ['target'],
    registers,
    async collect() {
      const counts = await sources.deadLetters();
      this.reset();
      // 0 for every configured target: an alert on `> 0` needs the series to exist before.
      for (const target of sources.targetNames()) this.set({ target }, 0);
      for (const [target, count] of counts) this.set({ target }, count);
    },
  });
  new Gauge({
    name: 'stevedore_spool_free_bytes',
    help: 'Free bytes on the spool\'s file system',
    registers,
    async collect() {
      // A failed statfs leaves the last value: one gauge must not fail the whole scrape.
      await sources.spoolFreeBytes().then((free) => this.set(free), () => undefined);
    },
  });
  new Gauge({
    name: 'stevedore_watch_paths',
    help: 'Files and directories a watch knows under its folder',
    labelNames: ['watch'],
    registers,
    collect() {
      this.reset();
      for (const { name, paths } of sources.watchPaths()) this.set({ watch: name }, paths);
    },
  });
  // A `container` label only for fleets' members, and only for those there now: a member
  // that leaves takes its series with it, so a fleet scaled up and down many times does
  // not pile up series (as many as members at once, times four outcomes).
  const seen = new Map<string, { target: string; container: string }>();
  // Registered before the counter: a scrape collects in order, so the series of a member
  // that left are gone before the counter is written out.
  new Gauge({
    name: 'stevedore_fleet_members',
    help: 'Containers a fleet\'s selector matches now, running or not',
    labelNames: ['target', 'state'],
    registers,
    collect() {
      this.reset();
      const present = new Set<string>();
      for (const { target, members } of sources.fleetMembers()) {
        this.set({ target, state: 'running' }, members.filter((m) => m.running).length);
        this.set({ target, state: 'stopped' }, members.filter((m) => !m.running).length);
        members.forEach((m) => present.add(`${target}/${m.name}`));
      }
      for (const [key, labels] of seen) {
        if (present.has(key)) continue;
        for (const outcome of ['done', 'failed', 'superseded', 'gone']) deliveries.remove({ ...labels, outcome });
        seen.delete(key);
      }
    },
  });
  const deliveries = new Counter({ name: 'stevedore_deliveries_total', help: 'Deliveries of a fleet\'s files to its members that ended, by how', labelNames: ['target', 'container', 'outcome'], registers });
  return {
    delivered(child, outcome) {
      const labels = { target: child.target, container: child.member ?? '' };
      seen.set(`${labels.target}/${labels.container}`, labels);
      deliveries.inc({ ...labels, outcome });
    },
    contentType: registry.contentType,
    render: () => registry.metrics(),
    settled(task, how) {
      tasks.inc({ source: task.source, target: task.target, outcome: how });
    },
    pushed(target, seconds, landed) {
      duration.observe({ target }, seconds);
      const bytes = landed.reduce((sum, task) => sum + (task.kind === 'put' ? task.bytes : 0), 0);
      if (bytes > 0) pushedBytes.inc({ target }, bytes);
    },
    retrying(target, reason) {
      retries.inc({ target, reason });
    },
    received: (bytes) => uploadBytes.inc(bytes),
    expired: (count) => expired.inc(count),
    ingested(accepted) {
      for (const task of accepted) ingestBytes.inc({ source: task.source }, task.bytes);
    },
  };
}
