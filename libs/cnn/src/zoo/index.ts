export { getZooSpec, zooNames } from './registry.ts';
export type { ZooArgs, ZooModelOptions, ZooOptions } from './registry.ts';
