// Worker side of kernels-wasm.test.ts: one LeNet-5 gradient computed in a worker thread, which
// loads its own instance of the WebAssembly kernels. Node cannot load .ts in a worker by itself.
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { buildModel, createRng, crossEntropy, fromData, getZooSpec, kernelBackend } = await import(new URL('../src/index.ts', import.meta.url).href);
const { n, modelSeed, dataSeed } = workerData;
const model = buildModel(getZooSpec('lenet5'), { seed: modelSeed });
const rng = createRng(dataSeed);
const x = fromData(Float32Array.from({ length: n * 784 }, () => rng.next()), [n, 1, 28, 28]);
const labels = Uint8Array.from({ length: n }, () => rng.int(10));
crossEntropy(model.forward(x, { training: true }), labels, { reduction: 'sum' }).backward();
parentPort.postMessage({ backend: kernelBackend(), grads: model.params.map((p) => p.grad) });
