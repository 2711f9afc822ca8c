// Which names a watch ignores: work files by default (*.part, *.tmp, *.swp, *~ and
// dotfiles, so that write-then-rename lands only the final name), plus the watch's own
// `ignore` globs, relative to its directory.
import path from 'node:path';
import picomatch from 'picomatch';

const DEFAULT_IGNORES = ['**/*.part', '**/*.tmp', '**/*.swp', '**/*~', '**/.*', '**/.*/**'];

/** A predicate for chokidar's `ignored`: true for paths under `root` to leave alone. */
export function createIgnore(root: string, globs: readonly string[]): (absolute: string) => boolean {
  const matches = picomatch([...DEFAULT_IGNORES, ...globs], { dot: true });
  return (absolute) => {
    const rel = path.relative(root, absolute);
    // Outside is `..` as a whole segment: `..data` (Kubernetes' volume links) is a dotfile inside.
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return false;
    return matches(rel.split(path.sep).join('/'));
  };
}
