// The arguments batch.sh takes for a batch, and the report it prints back.
import path from 'node:path';
import type { StevedoreError } from '../../errors.js';
import type { DeleteItem, PutItem } from '../target.js';

export interface Plan {
  /**
   * One per directory the puts land in; missing parts are made with its mode. `root`:
   * no symlink below it may lead outside it (the longest of its puts' roots: every
   * configured dest is the operator's, so a symlink at one is theirs too; the directory
   * itself when none of its puts has a root).
   */
  dirs: { dir: string; root: string; mode: number }[];
  deletes: DeleteItem[];
  /** Grouped by directory, as batch.sh wants them; `dir` indexes `dirs`. */
  puts: { item: PutItem; dir: number }[];
}

export function planBatch(deletes: readonly DeleteItem[], puts: readonly PutItem[]): Plan {
  const dirs: Plan['dirs'] = [];
  const index = new Map<string, number>();
  const sorted = [...puts].sort((a, b) => compare(path.posix.dirname(a.dest), path.posix.dirname(b.dest)));
  const planned = sorted.map((item) => {
    const dir = path.posix.dirname(item.dest);
    let i = index.get(dir);
    if (i === undefined) {
      i = dirs.push({ dir, root: '', mode: item.dirMode }) - 1;
      index.set(dir, i);
    }
    const planned = dirs[i] as Plan['dirs'][number];
    if ((item.root?.length ?? 0) > planned.root.length) planned.root = item.root as string;
    return { item, dir: i };
  });
  for (const d of dirs) d.root ||= d.dir;
  return { dirs, deletes: [...deletes], puts: planned };
}

const rootOf = (item: DeleteItem): string => item.root ?? path.posix.dirname(item.dest);

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const octal = (mode: number) => mode.toString(8).padStart(4, '0');

export type ScriptMode = 'all' | 'copy' | 'abort';

/** MODE TAG FIX, then the counted lists batch.sh describes. */
export function scriptArgs(plan: Plan, mode: ScriptMode, tag: string, fix: boolean): string[] {
  const args = [mode, tag, fix ? '1' : '0', String(plan.dirs.length)];
  for (const { dir, root, mode: dirMode } of plan.dirs) args.push(dir, root, octal(dirMode));
  args.push(String(plan.deletes.length));
  for (const item of plan.deletes) args.push(item.dest, rootOf(item));
  args.push(String(plan.puts.length));
  for (const { item, dir } of plan.puts) {
    const { uid, gid } = item.owner ?? { uid: 0, gid: 0 };
    args.push(String(dir), path.posix.basename(item.dest), `${uid}:${gid}`, octal(item.mode));
  }
  return args;
}

/** Where a put is unpacked before its rename, relative to the container's `/` as tar wants it. */
export const stagedPath = (item: PutItem, tag: string): string =>
  path.posix.join(path.posix.dirname(item.dest), `.stevedore-${tag}`, path.posix.basename(item.dest)).slice(1);

export type ItemOutcome = { status: 'ok' } | { status: 'missing' | 'isdir' | 'unsafe' | 'fail'; message: string };

export interface Report {
  deletes: Map<number, ItemOutcome>;
  puts: Map<number, ItemOutcome>;
  /** Directories refused (they lead outside their root) or not made: nothing may be copied into them. */
  dirErrors: Map<number, ItemOutcome>;
  /** What tar said when it stopped part-way. */
  tarError?: string;
  /** batch.sh's last line came: the report is whole. */
  ended: boolean;
  /** Per-file pushes that failed, by task id (when the runtime's copy replaced tar). */
  copyErrors?: Map<string, StevedoreError>;
}

const LINE = /^([rptd]) (\S+) (ok|missing|isdir|unsafe|fail)?\s?(.*)$/;
const GROUP = /^g (\d+) (\d+)$/;

export function parseReport(stdout: string): Report {
  const report: Report = { deletes: new Map(), puts: new Map(), dirErrors: new Map(), ended: false };
  const landed: [number, number][] = [];
  for (const line of stdout.split('\n')) {
    const group = GROUP.exec(line);
    const match = LINE.exec(line);
    if (line === 'e - end') report.ended = true;
    else if (group) landed.push([Number(group[1]), Number(group[2])]);
    else if (match?.[1] === 't') report.tarError = match[4];
    else if (match?.[3]) {
      const [, kind, index, status, message = ''] = match;
      const outcome: ItemOutcome = status === 'ok' ? { status } : { status: status as Exclude<ItemOutcome['status'], 'ok'>, message };
      const into = kind === 'r' ? report.deletes : kind === 'd' ? report.dirErrors : report.puts;
      into.set(Number(index), outcome);
    }
  }
  // A group line stands for every put in its range that has no line of its own.
  for (const [first, end] of landed) {
    for (let i = first; i < end; i += 1) if (!report.puts.has(i)) report.puts.set(i, { status: 'ok' });
  }
  return report;
}
