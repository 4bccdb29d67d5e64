// Every ThreadPool thread starts here: Node cannot start a worker on a .ts file, so register tsx's
// ESM loader in this thread, then import the entry module named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
