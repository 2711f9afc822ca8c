// Watch failures an operator can fix are said so that they can: the limit, its value, how to raise it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { watchErrorMessage } from '../../../src/ingest/watch/errors.js';

const errno = (code: string, message = `${code}: something`) => Object.assign(new Error(message), { code });

describe('watchErrorMessage', () => {
  it('ENOSPC from inotify names fs.inotify.max_user_watches, its value, the sysctl, and poll: true', () => {
    const message = watchErrorMessage(errno('ENOSPC', 'ENOSPC: System limit for number of file watchers reached'), { name: 'web' });
    let limit = 'unknown';
    try {
      limit = readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim();
    } catch {
      // not Linux: the message says "unknown"
    }
    expect(message).toBe(
      `watch "web": the inotify watch limit is reached (fs.inotify.max_user_watches = ${limit}); raise it with "sysctl -w fs.inotify.max_user_watches=1048576" (persist it in /etc/sysctl.d/), or set poll: true on this watch`,
    );
  });

  it.each(['EMFILE', 'ENFILE'])('%s names the open-files limit, how to raise it, and poll: true', (code) => {
    expect(watchErrorMessage(errno(code), { name: 'w' })).toBe(
      `watch "w": too many open files (${code}); raise the limit (ulimit -n, or LimitNOFILE= in the service unit), or set poll: true on this watch`,
    );
  });

  it('anything else is passed on with the watch name', () => {
    expect(watchErrorMessage(errno('EACCES', 'EACCES: permission denied, scandir /x'), { name: 'w' })).toBe('watch "w": EACCES: permission denied, scandir /x');
    expect(watchErrorMessage(new Error('odd'), { name: 'w' })).toBe('watch "w": odd');
  });
});
