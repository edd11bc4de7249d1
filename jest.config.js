// Nest 12 ships as ES modules only, so Jest runs in its native ESM mode
// (`node --experimental-vm-modules`, see the `test` script) with ts-jest emitting ESM.
// Unit specs live beside the code; e2e specs in test/ talk to the real Redis at REDIS_URL.
// ts-jest runs the @nestjs/swagger plugin too, so tests see the same OpenAPI as the build.
import vm from 'node:vm';

/**
 * Jest's own test for require() of ES modules (jest-runtime `supportsSyncEvaluate`): Node 24.9+
 * with --experimental-vm-modules has SourceTextModule#hasAsyncGraph.
 */
const requireEsmInJest = typeof vm.SourceTextModule?.prototype.hasAsyncGraph === 'function';

const common = {
  testEnvironment: 'node',
  rootDir: '.',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // @fastify/static (Swagger UI) and light-my-request (app.inject) are CommonJS and require()
  // the ESM-only content-disposition and cookie. Node runs that natively; Jest does too where
  // it can evaluate ES modules synchronously (Node 24.9+), and there it loads them as ES modules
  // whatever the transform, so a CommonJS copy would fail ("exports is not defined"). Below
  // that (Node 20, 22), Jest's require() cannot load ES modules, so it gets a CommonJS copy.
  ...(requireEsmInJest
    ? {}
    : { transformIgnorePatterns: ['/node_modules/(?!(content-disposition|cookie)/)'] }),
  transform: {
    ...(requireEsmInJest
      ? {}
      : {
          'node_modules/(content-disposition|cookie)/.+\\.js$': [
            'ts-jest',
            { useESM: false, isolatedModules: true, tsconfig: { allowJs: true, module: 'commonjs', moduleResolution: 'node10', ignoreDeprecations: '6.0' } },
          ],
        }),
    '^.+\\.ts$': [
      'ts-jest',
      {
        useESM: true,
        tsconfig: 'tsconfig.json',
        // nodenext + ESM is what Node runs; the hybrid-module warning does not apply to us.
        diagnostics: { ignoreCodes: [151002] },
        astTransformers: { before: ['<rootDir>/test/support/swagger-transformer.cjs'] },
      },
    ],
  },
};

/** @type {import('jest').Config} */
export default {
  // Jest reads testTimeout from the top-level config only (a project's own value is ignored, so
  // e2e tests had 5 s): e2e tests boot apps and real processes on a shared 2-core machine.
  testTimeout: 30000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'] },
  ],
};
