import nx from '@nx/eslint-plugin';

// Node built-ins are forbidden in code that must also run in a browser (libs/cnn, libs/protocol).
const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'crypto', 'child_process', 'worker_threads', 'stream', 'http', 'https', 'net', 'url', 'util', 'events', 'zlib', 'buffer', 'process'];

export default [
  { ignores: ['**/node_modules/**', '**/dist/**', '**/.nx/**', 'coverage/**', 'artifacts/**', '**/*.wasm'] },
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.js', '**/*.mjs'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            // The CNN library stands alone: it runs in Node workers and in the browser.
            { sourceTag: 'scope:cnn', onlyDependOnLibsWithTags: [] },
            // The records the processes exchange (job spec, metrics, job state): types, browser-safe.
            { sourceTag: 'scope:protocol', onlyDependOnLibsWithTags: ['scope:cnn'] },
            { sourceTag: 'scope:data', onlyDependOnLibsWithTags: ['scope:cnn'] },
            { sourceTag: 'scope:engine', onlyDependOnLibsWithTags: ['scope:cnn', 'scope:data', 'scope:protocol'] },
            { sourceTag: 'scope:queue', onlyDependOnLibsWithTags: ['scope:cnn', 'scope:data', 'scope:engine', 'scope:protocol'] },
            { sourceTag: 'scope:app', onlyDependOnLibsWithTags: ['scope:cnn', 'scope:data', 'scope:engine', 'scope:queue', 'scope:protocol'] },
            { sourceTag: 'scope:dashboard', onlyDependOnLibsWithTags: ['scope:cnn', 'scope:engine', 'scope:protocol'] },
            { sourceTag: 'scope:tools', onlyDependOnLibsWithTags: ['scope:cnn', 'scope:data', 'scope:engine', 'scope:queue', 'scope:app', 'scope:protocol'] },
            { sourceTag: 'platform:browser', onlyDependOnLibsWithTags: ['platform:browser'] },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.ts', '**/*.tsx'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['libs/cnn/src/**/*.ts', 'libs/protocol/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: nodeBuiltins, message: 'libs/cnn and libs/protocol must run in a browser: no Node APIs.' }] }],
      'no-restricted-globals': ['error', { name: 'process', message: 'libs/cnn and libs/protocol must run in a browser.' }, { name: 'Buffer', message: 'libs/cnn and libs/protocol must run in a browser: use Uint8Array.' }, { name: 'require', message: 'libs/cnn and libs/protocol are ESM.' }],
    },
  },
];
