export { createOptimizer, validateOptimizerSpec } from './optimizers.ts';
export type { Optimizer, OptimizerSpec } from './optimizers.ts';
export { learningRateAt, validateScheduleSpec } from './schedules.ts';
export type { ScheduleSpec } from './schedules.ts';
