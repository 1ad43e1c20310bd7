import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Integration files start real nats-server clusters whose elections starve on 2 shared cores
    // when run side by side; one file at a time keeps their timing honest.
    fileParallelism: false,
  },
});
