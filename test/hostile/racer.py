#!/usr/bin/env python3
"""A watched folder's hostile writer, for the race tests: it swaps pairs of names as
fast as the kernel lets it for SECONDS, then prints how many renames it made. It ends
each pair as it started (an even number of swaps).

  racer.py exchange SECONDS PAUSE_US A1 B1 [A2 B2 ...]
      renameat2(A, B, RENAME_EXCHANGE), pair after pair: an atomic swap, so A is always
      there, a directory one instant and a symlink (or a file and a FIFO) the next. A
      pair one of whose names is gone (a drop file the agent pushed and removed) is
      left out from then on.
  racer.py blink SECONDS PAUSE_US A1 B1 [A2 B2 ...]
      as exchange, but all pairs swap, the racer sleeps, all swap back at once: the
      swapped state lasts PAUSE_US, the first one only as long as the swaps take. With
      a FIFO as B, a file is a file for a blink: caught as one, it is a FIFO once opened.
  racer.py flip SECONDS PAUSE_US A B
      rename(A, B) then rename(B, A): a directory renamed back and forth (a storm).

PAUSE_US sleeps between swaps: flat out, the events of the swaps alone can keep an
agent too busy to stage anything until the race ends, which hides the race.
Node has no renameat2, hence Python (on every machine this project runs on).
"""
import ctypes
import errno
import os
import sys
import time

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def main():
    mode, seconds, pause = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1e6
    names = [os.fsencode(name) for name in sys.argv[4:]]
    pairs = [(names[i], names[i + 1]) for i in range(0, len(names), 2)]
    libc = ctypes.CDLL(None, use_errno=True)

    def exchange(a, b):
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), a)

    def flip(a, b):
        os.rename(a, b)
        os.rename(b, a)
    def swap_all():
        swapped = 0
        for pair in list(pairs):
            try:
                exchange(*pair)
                swapped += 1
            except OSError as error:
                if error.errno != errno.ENOENT:
                    raise
                pairs.remove(pair)
        return swapped

    renames = 0
    end = time.monotonic() + seconds
    while pairs and time.monotonic() < end:
        if mode == 'blink':
            renames += swap_all()
            time.sleep(pause)
            renames += swap_all()
            continue
        for pair in list(pairs):
            step = exchange if mode == 'exchange' else flip
            try:
                # An even number: the pair is back as it started whenever the race stops.
                for _ in range(2 if mode == 'exchange' else 256):
                    step(*pair)
                    renames += 1 if mode == 'exchange' else 2
                    if pause:
                        time.sleep(pause)
            except OSError as error:
                if mode != 'exchange' or error.errno != errno.ENOENT:
                    raise
                pairs.remove(pair)
    print(renames, flush=True)


if __name__ == '__main__':
    main()
