// `stevedore dead-letter list | retry ID | retry --all | purge ID`: through the running
// agent's API when it answers, else directly on state_dir, but only when no agent runs
// on it (its pid file says so): two writers on one journal would lose tasks.
import path from 'node:path';
import { pino } from 'pino';
import type { Config } from '../config/load.js';
import { formatBytes } from '../config/units.js';
import { StevedoreError, isStevedoreError } from '../errors.js';
import { newTask, taskJson } from '../task.js';
import { createDeadLetter, deadEntryJson, type DeadEntryJson } from '../spool/dead-letter.js';
import { createJournal } from '../spool/journal.js';
import { replayAll, type Replayed } from '../spool/replay.js';
import { createSpool } from '../spool/spool.js';
import { answerError, ask, type Answer } from './client.js';
import { EXIT } from './exit.js';
import { runningAgent } from './pid.js';
import { table } from './table.js';

const DEAD_LETTER_USAGE = 'stevedore dead-letter list | retry ID | retry --all | purge ID [-c FILE]';

export async function deadLetterCommand(config: Config, action: string | undefined, id: string | undefined, all: boolean): Promise<number> {
  if (action === 'list' && id === undefined) return list(config);
  if (action === 'retry' && (id === undefined) === all) return retry(config, all ? undefined : id);
  if (action === 'purge' && id !== undefined && !all) return purge(config, id);
  process.stderr.write(`stevedore: usage: ${DEAD_LETTER_USAGE}\n`);
  return EXIT.badConfig;
}

/** The agent's answer, or undefined when no agent answers (then the store is ours). */
async function online(config: Config, method: string, urlPath: string): Promise<Answer | undefined> {
  try {
    const answer = await ask(config, method, urlPath);
    if (answer.status >= 400) throw answerError(answer);
    return answer;
  } catch (error) {
    if (!isStevedoreError(error, 'AGENT_UNREACHABLE')) throw error;
    const pid = await runningAgent(config);
    if (pid !== undefined) {
      throw new StevedoreError('AGENT_UNREACHABLE', `${error.message}, but an agent (pid ${pid}) runs on ${config.state_dir}: not touching its store behind its back`);
    }
    return undefined;
  }
}

function offline(config: Config) {
  const spool = createSpool(path.join(config.state_dir, 'spool'));
  const deadLetter = createDeadLetter(path.join(config.state_dir, 'dead-letter'));
  return { spool, deadLetter };
}

async function list(config: Config): Promise<number> {
  const answer = await online(config, 'GET', '/dead-letter');
  const entries = answer ? (answer.body as { entries: DeadEntryJson[] }).entries : (await offline(config).deadLetter.list()).map(deadEntryJson);
  if (entries.length === 0) {
    process.stdout.write('the dead-letter store is empty\n');
    return EXIT.ok;
  }
  const rows = entries.map((e) => [e.id, e.target, e.dest, formatBytes(e.bytes), e.failed_at, e.reason]);
  process.stdout.write(`${table(['ID', 'TARGET', 'DEST', 'SIZE', 'FAILED AT', 'REASON'], rows)}\n`);
  return EXIT.ok;
}

async function retry(config: Config, id: string | undefined): Promise<number> {
  const answer = await online(config, 'POST', id === undefined ? '/dead-letter/retry' : `/dead-letter/${encodeURIComponent(id)}/retry`);
  let tasks: Record<string, unknown>[];
  let skipped: Replayed['skipped'] = [];
  if (answer && id === undefined) ({ tasks, skipped } = answer.body as { tasks: Record<string, unknown>[]; skipped: Replayed['skipped'] });
  else if (answer) tasks = [answer.body as Record<string, unknown>];
  else ({ tasks, skipped } = await retryOffline(config, id));
  const later = answer ? '' : ' (pushed at the agent\'s next start)';
  for (const task of tasks) process.stdout.write(`queued again: ${String(task.target)}:${String(task.dest)} as task ${String(task.id)}${later}\n`);
  for (const entry of skipped) process.stderr.write(`stevedore: not retried: ${entry.id}: ${entry.reason}\n`);
  if (tasks.length === 0 && skipped.length === 0) process.stdout.write('the dead-letter store is empty\n');
  return skipped.length > 0 ? EXIT.fatal : EXIT.ok;
}

// No agent runs: its journal is ours to append to, and its next start queues these. The
// journal is opened only with an entry to write: a state_dir that an agent never ran on
// (or that was removed) has neither a store nor a directory to write one in.
async function retryOffline(config: Config, id: string | undefined): Promise<Pick<Replayed, 'skipped'> & { tasks: Record<string, unknown>[] }> {
  const { spool, deadLetter } = offline(config);
  const entries = id === undefined ? await deadLetter.list() : [await deadLetter.get(id)];
  if (entries.length === 0) return { tasks: [], skipped: [] };
  const journal = createJournal({ file: path.join(config.state_dir, 'journal.log'), syncDirs: [spool.dir], logger: pino({ level: 'silent' }) });
  await journal.open();
  try {
    // An entry for a target this config lacks stays, as through the agent: its next start
    // would put it straight back (TARGET_UNKNOWN).
    const known = (target: string) => Object.hasOwn(config.targets, target);
    const replayed = await replayAll(entries, { spool, journal, deadLetter, known }, () => undefined);
    return { tasks: replayed.tasks.map(({ record }) => taskJson(newTask(record))), skipped: replayed.skipped };
  } finally {
    await journal.close();
  }
}

async function purge(config: Config, id: string): Promise<number> {
  const answer = await online(config, 'DELETE', `/dead-letter/${encodeURIComponent(id)}`);
  if (!answer) await offline(config).deadLetter.remove(id);
  process.stdout.write(`purged ${id}\n`);
  return EXIT.ok;
}
