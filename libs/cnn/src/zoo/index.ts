export { getZooSpec, zooNames } from './registry.ts';
export type { ZooOptions } from './registry.ts';
