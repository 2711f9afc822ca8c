// Host directories the config names, checked against each other and, when asked, against
// the host. A watched folder must exist at start. No two of the directories the agent
// reads and writes may nest (SPEC §9): a watch holding state_dir pushes the agent's own
// journal and spool, and its drop mode deletes them once pushed; a local target's root
// around or inside a watch pushes each landed file again; after_push moves pushed files
// into the watch or into state_dir.
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { errnoCode, errorMessage } from '../errors.js';
import type { ParsedConfig } from './schema.js';

export interface PathProblem {
  path: (string | number)[];
  message: string;
}

/** A host directory, under the key that names it ("watch.0.path"). */
interface Place {
  key: (string | number)[];
  dir: string;
}

const keyOf = (place: Place) => place.key.join('.');

/** `onHost`: also stat the watched folders and read symlinks (a real config file); without it, only the spelled paths are compared. */
export function checkHostPaths(config: ParsedConfig, onHost: boolean): PathProblem[] {
  const stateDir: Place = { key: ['state_dir'], dir: config.state_dir };
  const watches = config.watch.map((w, i): Place => ({ key: ['watch', i, 'path'], dir: w.path }));
  const afterPush = config.watch.flatMap((w, i): Place[] => (w.after_push === null ? [] : [{ key: ['watch', i, 'after_push'], dir: w.after_push }]));
  const roots = Object.entries(config.targets).flatMap(([name, t]): Place[] => (t.runtime === 'local' ? [{ key: ['targets', name, 'root'], dir: t.root }] : []));
  const real = onHost ? realPath : (dir: string) => dir;
  // A file where a directory is made at start would stop it with a bare EEXIST.
  const problems: PathProblem[] = onHost ? [...watches.flatMap(mustExist), ...[stateDir, ...roots, ...afterPush].flatMap(mayBeMade)] : [];
  // Reported at `place`, naming `other` and why they must not nest.
  const apart = (place: Place, other: Place, why: string | ((found: Overlap) => string)) => {
    const found = overlap(place.dir, other.dir, real);
    if (!found) return;
    const message = typeof why === 'string' ? `${place.dir} ${found.relation} ${keyOf(other)} ${other.dir}${found.through}: ${why}` : why(found);
    problems.push({ path: place.key, message });
  };
  for (const watch of watches) apart(watch, stateDir, 'the agent would push, and in drop mode delete, its own spool and journal');
  for (const moved of afterPush) {
    const watch = watches[moved.key[1] as number] as Place;
    // A moved file would be seen, and pushed, again.
    apart(moved, watch, (found) => `must not be inside, or contain, the watched directory ${watch.dir}${found.through}`);
    apart(moved, stateDir, 'pushed files would be moved among the agent\'s own files');
  }
  for (const root of roots) {
    apart(root, stateDir, 'the target would write among the agent\'s own files');
    for (const watch of watches) apart(root, watch, 'each landed file would be seen by the watch and pushed again');
  }
  return problems;
}

// A watched folder must be there; the others are made at start when missing.
const mustExist = (place: Place) => notDirectory(place, true);
const mayBeMade = (place: Place) => notDirectory(place, false);

function notDirectory(place: Place, mustExist: boolean): PathProblem[] {
  const problem = (message: string) => [{ path: place.key, message }];
  // Not throwIfNoEntry: from Node 22 it also hides ENOTDIR, a file among the parents.
  try {
    return statSync(place.dir).isDirectory() ? [] : problem(`${place.dir} is not a directory`);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') return mustExist ? problem(`${place.dir} does not exist`) : [];
    return problem(`${place.dir}: ${code === 'ENOTDIR' ? 'one of its parents is not a directory' : `cannot be looked at: ${errorMessage(error)}`}`);
  }
}

interface Overlap {
  relation: 'is' | 'lies inside' | 'contains';
  /** Empty when the spelled paths overlap; else the resolved paths that do. */
  through: string;
}

// Two directories overlap when one is the other or lies inside it, as spelled or once
// symlinks are resolved (two spellings can be one directory).
function overlap(a: string, b: string, real: (dir: string) => string): Overlap | undefined {
  const spelled = relate(a, b);
  if (spelled) return { relation: spelled, through: '' };
  const [realA, realB] = [real(a), real(b)];
  const resolved = relate(realA, realB);
  return resolved && { relation: resolved, through: ` (through symlinks: ${realA} and ${realB})` };
}

function relate(a: string, b: string): Overlap['relation'] | undefined {
  if (a === b) return 'is';
  if (isWithin(b, a)) return 'lies inside';
  if (isWithin(a, b)) return 'contains';
  return undefined;
}

// `..` as a whole segment only: `in/..data` lies inside `in`.
function isWithin(dir: string, candidate: string): boolean {
  const rel = path.relative(dir, candidate);
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

// The deepest part of `dir` that exists, resolved, with the rest as spelled: state_dir
// and a target's root may not exist yet, but a symlinked parent already decides where
// they will be.
function realPath(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    const parent = path.dirname(dir);
    return parent === dir ? dir : path.join(realPath(parent), path.basename(dir));
  }
}
