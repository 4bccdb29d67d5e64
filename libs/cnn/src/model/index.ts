export { buildModel } from './build.ts';
export type { BuildOptions, ForwardOptions, Model, ModelNode } from './build.ts';
export { ModelSpecError, OptimizerSpecError, SpecError } from './check.ts';
export { copyParams, loadNamedArrays, ParamLoadError } from './params.ts';
export { planModel, validateModelSpec } from './spec.ts';
export type { LayerType, ModelPlan, NodePlan, ResolvedLayer } from './spec.ts';
