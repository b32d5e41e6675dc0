const swc = ['@swc/jest', { jsc: { target: 'es2022' } }];
// kysely >= 0.29 ships ES modules only; Node 20 can require() them but Jest's module
// runtime cannot (before Node 24.9), so kysely is compiled to CommonJS like our sources.
const transform = { '^.+\\.tsx?$': swc, '/node_modules/kysely/.+\\.js$': swc };
const common = {
  transform,
  transformIgnorePatterns: ['/node_modules/(?!kysely/)'],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts', '<rootDir>/test/e2e/**/*.test.ts'],
      globalSetup: '<rootDir>/test/helpers/global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
      testTimeout: 120000,
    },
  ],
};
