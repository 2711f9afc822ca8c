import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'var/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  { files: ['bench/**', 'src/cli.ts'], rules: { 'no-console': 'off' } },
  {
    // The drop page's scripts run in the browser (src/ingest/ui/page.ts serves them).
    files: ['src/ingest/ui/assets/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(['window', 'document', 'sessionStorage', 'fetch', 'URL', 'Option', 'setTimeout', 'TextDecoderStream'].map((name) => [name, 'readonly'])),
    },
  },
);
