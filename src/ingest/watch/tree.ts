// What watching a directory tree reports, whichever way it watches: with inotify by
// default (notify-tree.ts), or with chokidar 5's polling (`poll: true`, poll-tree.ts),
// which network filesystems and machines without inotify need.
import type { Stats } from 'node:fs';
import type { RootGuard } from './root.js';

export interface TreeEvents {
  add(file: string, stats: Stats): void;
  change(file: string, stats: Stats): void;
  unlink(file: string): void;
  unlinkDir(dir: string): void;
  error(error: Error): void;
  /** A directory's events came too fast: its watch pauses, then it is rescanned. */
  storm?(dir: string): void;
  /** A name that is not valid UTF-8 (node shows it with U+FFFD and cannot open it by that name). */
  unreadable?(file: string): void;
  /** A directory the agent may not list (permission denied): nothing under it is seen until it may. */
  denied?(dir: string): void;
}

export interface TreeOptions {
  ignored(absolute: string): boolean;
  /** Report the files already there as `add` when the scan finds them. */
  initial: boolean;
  /** The folder's held descriptor, where every walk into it starts. */
  use: RootGuard['use'];
  /**
   * Whether the watch looks at this file again anyway before it stages it (it is
   * settling): a write to it then needs no look of its own, one lstat per file fewer
   * in a drop. A new name, a removal or a rename is always looked at.
   */
  settling?(file: string): boolean;
}

export interface TreeWatcher {
  /** Settles once the initial scan is done. */
  readonly ready: Promise<void>;
  /** Files and directories known under the root now. */
  count(): number;
  close(): Promise<void>;
}
