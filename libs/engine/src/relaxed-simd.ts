// WebAssembly relaxed SIMD, which the 'fma' kernel numerics need (see `JobSpec.numerics`), is
// behind a V8 flag on Node 20 and on by default from V8 11.4 (Node 21+, Chrome 114+). The engine
// turns the flag on when it loads, before any 'fma' kernel compiles. V8 flags are process-wide, so
// the process's worker threads (LocalExecutor, apps/worker) have it too. A no-op where relaxed SIMD
// is already there.
import v8 from 'node:v8';
import { fmaKernelSupport } from '@stride/cnn';

if (!fmaKernelSupport().relaxedSimd) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
