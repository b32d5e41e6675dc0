export * from './types';
export * from './client';
export * from './repositories';
export {
  appliedMigrations,
  migrateToLatest,
  migrations,
  runMigrate,
  MigrationError,
  MigrationFailedError,
  UnknownMigrationError,
  MIGRATION_TABLE,
  type MigrateResult,
} from './migrate';
