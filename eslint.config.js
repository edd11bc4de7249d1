// `npm run lint`: typescript-eslint with type information (recommendedTypeChecked), zero
// warnings allowed. The rules that matter most here are the promise ones: a promise nobody
// awaits or catches (no-floating-promises), an async function where a callback's result is
// ignored (no-misused-promises) and awaiting a non-promise (await-thenable).
//
// Off, and why:
// - no-unsafe-* (assignment, member-access, call, argument, return): they flag every use of the
//   `any` that Nest's and Fastify's APIs hand out (getRequest(), getResponse(), transform
//   callbacks) and every `res.json()` body in the e2e specs; `strict` TypeScript and
//   no-explicit-any keep our own code typed.
// - require-await: an `async` method with no `await` is how a Promise-returning interface is
//   implemented here, and it turns a throw into a rejection, which dropping `async` would not.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.e2e-build/', 'bench/results/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // tsconfig.json covers src/, test/ and bench/*.ts; the bench scripts are plain .mjs (more
        // than the default 8 files outside the project: raised, it only costs lint time).
        projectService: {
          allowDefaultProject: ['bench/*.mjs', '*.js', 'test/support/*.cjs', 'test/support/*.mjs'],
          maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 16,
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
      // A `let` a closure reads before its one assignment (app.factory's fastPath) cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Same convention as TypeScript's noUnusedParameters: a leading _ marks it unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // A series is a sorted set only on the portable backend (RedisTimeSeries keeps its own type):
    // specs read samples through test/support/series.ts. The portable layout tests and the
    // cluster test (which branches on its own redis-server's backend) may look at the keys.
    files: ['test/**/*.ts'],
    ignores: ['test/timeseries.e2e-spec.ts', 'test/cluster.e2e-spec.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression[callee.property.name=/^(zcard|zcount|zrange|zrangebyscore|zrevrange|zscore)$/]',
          message: 'A series key is a sorted set only on the portable backend: use storedSamples/sampleCount from test/support/series.ts.',
        },
      ],
    },
  },
  {
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Node scripts and configs: Node's globals (TypeScript files get them from @types/node).
    files: ['**/*.mjs', '**/*.js', '**/*.cjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', fetch: 'readonly', performance: 'readonly', require: 'readonly', module: 'writable', __dirname: 'readonly' },
    },
  },
);
