// The pool of worker threads lives in @stride/data (the lowest Node-side library, whose image-folder
// loader decodes on it); the engine re-exports it for the LocalExecutor, its threads and apps/worker.
export { ThreadPool, serveThread, threadData, threadIndex } from '@stride/data';
export type { ThreadPoolOptions, ServeThreadOptions } from '@stride/data';
