import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Several suites fsync and spawn real servers; two cores is all CI has.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
