// Worker side of kernels-fma.test.ts: one LeNet-5 gradient computed in a worker thread with the
// kernel numerics the test asks for. The V8 flag the test process set is process-wide, so this
// thread has relaxed SIMD too (reported back). Node cannot load .ts in a worker by itself.
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { buildModel, createRng, crossEntropy, fmaKernelSupport, fromData, getZooSpec, kernelBackend, kernelNumerics, setKernelNumerics } = await import(new URL('../src/index.ts', import.meta.url).href);
const { n, modelSeed, dataSeed, numerics } = workerData;
const support = fmaKernelSupport();
setKernelNumerics(numerics);
const model = buildModel(getZooSpec('lenet5'), { seed: modelSeed });
const rng = createRng(dataSeed);
const x = fromData(Float32Array.from({ length: n * 784 }, () => rng.next()), [n, 1, 28, 28]);
const labels = Uint8Array.from({ length: n }, () => rng.int(10));
crossEntropy(model.forward(x, { training: true }), labels, { reduction: 'sum' }).backward();
parentPort.postMessage({ backend: kernelBackend(), numerics: kernelNumerics(), support, grads: model.params.map((p) => p.grad) });
