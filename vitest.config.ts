import { defineConfig } from 'vitest/config';

const timeouts = { testTimeout: 20_000, hookTimeout: 20_000 };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/runtimes/**'],
          ...timeouts,
          // Several suites fsync and spawn real servers; two cores is all CI has.
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Real containers: one file at a time, after the rest, because some of these
        // tests stop and start the runtimes' daemons under everyone using them.
        test: {
          name: 'runtimes',
          include: ['test/runtimes/**/*.test.ts'],
          testTimeout: 90_000,
          hookTimeout: 90_000,
          fileParallelism: false,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
