export * from './keys';
export * from './codec';
export * from './partition-queue';
export * from './consumer';
export * from './reconciler';
export * from './signals';
export * from './admin';
export { withScripts, readScripts } from './scripts';
