// ESLint flat config (kept under test/ so the top level stays as the project card asks).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/*.pb.ts', 'test-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']", message: 'use the injected Rng' },
      ],
    },
  },
  {
    // framework and pattern code take time from the injected Clock; only clock.ts touches real timers
    files: ['framework/**/*.ts', 'actors/**/*.ts'],
    ignores: ['framework/clock.ts', 'framework/cli.ts', 'framework/nats-server.ts'],
    rules: {
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'use the injected Clock' },
        { name: 'setInterval', message: 'use the injected Clock' }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'use the injected Clock' }],
    },
  },
);
