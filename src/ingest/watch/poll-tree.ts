// Watching a tree by polling, with chokidar 5 (`poll: true`): what network filesystems
// and machines without inotify need. Its scan follows no symlink; what it reports is
// read through the same walk from the folder's descriptor as with inotify (stage.ts).
import { watch as chokidarWatch } from 'chokidar';
import type { TreeEvents, TreeOptions, TreeWatcher } from './tree.js';

export function pollTree(root: string, { ignored, initial }: Pick<TreeOptions, 'ignored' | 'initial'>, events: TreeEvents): TreeWatcher {
  const watcher = chokidarWatch(root, { ignored, ignoreInitial: !initial, followSymlinks: false, alwaysStat: true, usePolling: true, interval: 500, binaryInterval: 500 });
  watcher
    .on('add', (file, stats) => stats && events.add(file, stats))
    .on('change', (file, stats) => stats && events.change(file, stats))
    .on('unlink', events.unlink)
    .on('unlinkDir', events.unlinkDir)
    .on('error', (error) => events.error(error as Error));
  return {
    ready: new Promise((resolve) => watcher.once('ready', () => resolve())),
    count: () => Object.values(watcher.getWatched()).reduce((sum, names) => sum + names.length, 0),
    close: () => watcher.close(),
  };
}
