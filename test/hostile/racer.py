#!/usr/bin/env python3
"""A watched folder's hostile writer, for the race tests: it swaps two names as fast as
the kernel lets it for SECONDS, then prints how many swaps it made. It always stops
after an even number, so the names end as they started.

  racer.py exchange A B SECONDS [PAUSE_US]
                                  renameat2(A, B, RENAME_EXCHANGE): an atomic swap, so
                                  A is always there, a directory one instant and a
                                  symlink (or a FIFO) the next
  racer.py flip A B SECONDS [PAUSE_US]
                                  rename(A, B) then rename(B, A): a directory renamed
                                  back and forth (an event storm)

PAUSE_US (default 0) sleeps between swaps: flat out, the events of the swaps alone can
keep an agent too busy to stage anything until the race ends, which hides the race.

Node has no renameat2, hence Python (on every machine this project runs on).
"""
import ctypes
import os
import sys
import time

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def main():
    mode, a, b, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    pause = float(sys.argv[5]) / 1e6 if len(sys.argv) > 5 else 0
    libc = ctypes.CDLL(None, use_errno=True)
    ea, eb = os.fsencode(a), os.fsencode(b)

    def exchange():
        if libc.renameat2(AT_FDCWD, ea, AT_FDCWD, eb, RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), a)

    def flip():
        os.rename(a, b)
        os.rename(b, a)

    step = exchange if mode == 'exchange' else flip
    swaps = 0
    end = time.monotonic() + seconds
    batch = 512 if pause == 0 else 2
    while time.monotonic() < end:
        for _ in range(batch):
            step()
            swaps += 1
            if pause:
                time.sleep(pause)
    if mode == 'exchange' and swaps % 2 == 1:
        step()
        swaps += 1
    print(swaps * (2 if mode == 'flip' else 1), flush=True)


if __name__ == '__main__':
    main()
