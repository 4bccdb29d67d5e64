// Optional per-node timing of a model's forward and backward passes, for the profiling benchmark
// (tools/bench/src/zoo.ts). Off unless `setProfiler` installed a profiler: then the model times
// each node's forward, and the backward closures recorded while a node ran are timed under it.

export type ProfilePhase = 'forward' | 'backward';

export interface Profiler {
  /** A clock in milliseconds (performance.now in Node and browsers). */
  now(): number;
  /** Adds `ms` spent in `phase` of node `node` (layer type `kind`). */
  add(node: string, kind: string, phase: ProfilePhase, ms: number): void;
}

/** The node a profiled op belongs to. */
export interface ProfileTag {
  node: string;
  kind: string;
}

let current: Profiler | null = null;
let tag: ProfileTag | null = null;

/** Installs `p` (null: profiling off) for this thread. */
export function setProfiler(p: Profiler | null): void {
  current = p;
  tag = null;
}

/** The installed profiler, or null. */
export function activeProfiler(): Profiler | null {
  return current;
}

/** The node whose ops run now (recorded on their outputs for the backward timing), or null. */
export function profileTag(): ProfileTag | null {
  return tag;
}

export function setProfileTag(t: ProfileTag | null): void {
  tag = t;
}
