// Watch failures an operator can fix, said so that they can: which limit, its value,
// and how to raise it.
import { readFileSync } from 'node:fs';
import { errnoCode } from '../../errors.js';

const readLimit = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return 'unknown';
  }
};

export function watchErrorMessage(error: Error, { name }: { name: string }): string {
  const code = errnoCode(error);
  if (code === 'ENOSPC') {
    const limit = readLimit('/proc/sys/fs/inotify/max_user_watches');
    return `watch "${name}": the inotify watch limit is reached (fs.inotify.max_user_watches = ${limit}); raise it with "sysctl -w fs.inotify.max_user_watches=1048576" (persist it in /etc/sysctl.d/), or set poll: true on this watch`;
  }
  if (code === 'EMFILE' || code === 'ENFILE') {
    return `watch "${name}": too many open files (${code}); raise the limit (ulimit -n, or LimitNOFILE= in the service unit), or set poll: true on this watch`;
  }
  return `watch "${name}": ${error.message}`;
}
