#!/usr/bin/env -S node --initial-old-space-size=256 --interrupt-budget=8192
// Entry point of the `stride` CLI: registers tsx so the TypeScript sources run as they are. Started
// through its shebang (`npx stride`), Node gets the larger initial heap of the services (see
// SERVICE_NODE_OPTIONS in libs/queue/src/queues.ts), which spares a long-running worker or
// coordinator a full garbage collection every few steps.
import { register } from 'tsx/esm/api';
register();
await import('../src/main.ts');
