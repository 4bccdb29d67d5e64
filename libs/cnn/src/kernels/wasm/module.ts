// The WebAssembly SIMD kernels, generated as a module (see ./asm.ts for the notation).
//
// Everything is one register-blocked micro-kernel in three flavours:
//   C[mr × NR] += A-panel[k × MR] · B[k × NR]   (NR = 4·nv columns, mr ≤ MR rows)
// The A panel holds MR consecutive rows of A interleaved per k (`as` bytes per k step), each
// value broadcast to the four lanes; the B row of step k is NR consecutive floats at
//   - strided: b + k·bs (a row-major matrix read in place, or a packed panel),
//   - table:   b + tab[k] (an "implicit im2col": tab holds the offset of every filter tap into a
//     column-expanded image, see ./conv.ts, so the row is NR consecutive output positions),
//   - scatter: strided B, but row r of C at c + ctab[r] (the adjoint of `table`: a convolution's
//     input gradient added straight into the column-expanded image).
// 4 × 8 (MR × NR) is the largest tile V8 keeps in registers: 8 accumulators, 2 B vectors, the
// broadcast A value and a product; larger tiles (5×8, 6×8, 3×12, 4×12) spill and run slower, and
// so does unrolling the k loop. Without fused multiply-add (relaxed SIMD needs a flag on Node 20)
// this runs at about 30 GFLOP/s per core here when its operands are in L1.
// The accumulators start from C (so the caller pre-fills C with zeros, the bias, or the values
// to accumulate onto) and sum strictly in k order: every output element is
// ((c + a0·b0) + a1·b1) + … in float32, one multiply and one add per term. The order depends
// only on the shapes, never on the thread or the blocking, so results are bit-reproducible.
//
// The weight gradient of a convolution is a reduction over output positions instead:
//   acc[co][tap] (4 lanes) += dY[co][p..p+3] · xe[off(tap) + p..p+3]
// with four partial sums per element (lane l sums the positions ≡ l mod 4, in order, sample after
// sample) that `wgrad_finish` adds as (l0 + l1) + (l2 + l3).
//
// Numerics: the default ("exact") module multiplies and adds separately as above. The "fma"
// module (`buildKernelModule(shape, { fma: true })`, relaxed SIMD) is the same module except that
// these two accumulations, acc += a·b, are one `f32x4.relaxed_madd` each: fma(a, b, acc), rounded
// once per term, in the same order. Every other function (copies, pooling, batch norm, the
// optimizers, which must match the JS loops bit for bit) is byte-for-byte the exact one.

import { type Code, type FuncScope, type Local, ModuleWriter, bits, call, doWhile, f32, f32x4, f64, f64x2, forRange, get, i32, i32x4, i64x2, ifThen, memoryFill, set, tee, v128 } from './asm.ts';

/** Register blocking of one family of micro-kernels. */
export interface Blocking {
  /** Rows of C per micro-kernel (output channels for convolutions). */
  mr: number;
  /** f32x4 vectors of C per row (NR = 4·nv columns / output positions). */
  nv: number;
  /** Output channels per weight-gradient tile. */
  wmr: number;
  /** Filter taps per weight-gradient tile. */
  wnt: number;
}

/**
 * Two families: `main` (GEMM, and convolutions by default) and `alt`, used for a convolution whose
 * channel count is a multiple of alt.mr (alt.wmr) but not of main.mr (main.wmr), e.g. 6 channels.
 * V8 gives wasm 15 xmm registers and its scheduler hoists loads, so a tile of more than about 8
 * accumulators spills one to the stack, which costs more than the larger tile saves.
 */
export interface KernelShape {
  main: Blocking;
  alt: Blocking;
}

export const DEFAULT_SHAPE: KernelShape = { main: { mr: 4, nv: 2, wmr: 4, wnt: 2 }, alt: { mr: 2, nv: 4, wmr: 3, wnt: 2 } };

/** Exported functions of the kernel module; every address and stride is in bytes. */
export interface KernelExports {
  /**
   * C[m × nPad] += op(A) · B. A: panels of MR rows, panel i at a + i·aPanel, `as` bytes per k.
   * B: panels of NR columns, panel j at b + j·bPanel, `bs` bytes per k. nPad is a multiple of NR.
   */
  gemm(m: number, nPad: number, k: number, a: number, aPanel: number, as: number, b: number, bPanel: number, bs: number, c: number, ldc: number): void;
  /**
   * `gemm` with row i of C at c + ctab[i] (byte offsets, i32) instead of c + i·ldc. Rows of one
   * MR-row panel must not overlap; rows of different panels may (they are summed onto in turn).
   */
  gemm_scatter(m: number, nPad: number, k: number, a: number, aPanel: number, as: number, b: number, bPanel: number, bs: number, c: number, ctab: number): void;
  /**
   * Per sample s < ns: out_s[co][p] += Σ_t w[co][t] · x_s[tab[t] + p] for p < ldc/4 (a multiple
   * of NR), taps in blocks of kcTaps. w is packed in panels of MR channels ([panel][t][MR]);
   * x_s = x + s·xStride, out_s = out + s·outStride, row co of out_s at co·ldc.
   */
  conv_fwd(ns: number, cOut: number, taps: number, kcTaps: number, w: number, x: number, xStride: number, tab: number, out: number, outStride: number, ldc: number): void;
  /** `conv_fwd` with the `alt` blocking. */
  conv_fwd_alt(ns: number, cOut: number, taps: number, kcTaps: number, w: number, x: number, xStride: number, tab: number, out: number, outStride: number, ldc: number): void;
  /**
   * acc[co][t] (v128 partial sums, [cOut][taps]) += Σ_s Σ_p dy_s[co][p] · x_s[tab[t] + p] over
   * p < len/4 (len a multiple of 16); dy_s = dy + s·dyStride with planes dyPlane bytes apart.
   */
  conv_wgrad(ns: number, cOut: number, taps: number, dy: number, dyStride: number, dyPlane: number, len: number, x: number, xStride: number, tab: number, acc: number): void;
  /** `conv_wgrad` with the `alt` blocking. */
  conv_wgrad_alt(ns: number, cOut: number, taps: number, dy: number, dyStride: number, dyPlane: number, len: number, x: number, xStride: number, tab: number, acc: number): void;
  /** dst[i] += (l0 + l1) + (l2 + l3) of acc[i], i < count. */
  wgrad_finish(acc: number, count: number, dst: number): void;
  /**
   * For planes × rows rows of `len` floats: dst row (pl, r) at dst + pl·dstPlane + r·dstRow
   * = (or += when `add` ≠ 0) src row at src + pl·srcPlane + r·srcRow.
   */
  copy2d(src: number, srcPlane: number, srcRow: number, dst: number, dstPlane: number, dstRow: number, planes: number, rows: number, len: number, add: number): void;
  /**
   * Column expansion: dst[pl][kx][y][ox] = src[pl][y − padH][ox + kx − padW] (zero outside the
   * h×w image) for pl < planes, kx < kw, y < h + 2·padH, ox < outW; then `slack` zero bytes.
   */
  expand(src: number, dst: number, planes: number, h: number, w: number, kw: number, padH: number, padW: number, outW: number, slack: number): void;
  /**
   * Column expansion of a strided convolution (see ../conv.ts): dst[pl][kx][ry][yy][ox] =
   * src[pl][yy·sy + ry − padH][ox·sx + kx − padW], zero outside the image, for kx < kw, ry < sy,
   * yy < hq, ox < outW; then `slack` zero bytes.
   */
  expand_strided(src: number, dst: number, planes: number, h: number, w: number, kw: number, padH: number, padW: number, outW: number, slack: number, sy: number, sx: number, hq: number): void;
  /**
   * The adjoint of `expand_strided`, adding: dx[pl][yy·sy + ry − padH][ox·sx + kx − padW] +=
   * xe[pl][kx][ry][yy][ox] where inside the image, in the order of the loops over pl, kx, ry, yy, ox.
   */
  fold_strided(xe: number, dx: number, planes: number, h: number, w: number, kw: number, padH: number, padW: number, outW: number, sy: number, sx: number, hq: number): void;
  /**
   * col2im, adding: dx[c][y][x] += col[(c·kh + i)·kw + j][oy·outW + ox] for y = oy + i − padH,
   * x = ox + j − padW inside the h×w image (stride 1, no dilation); col rows ldc bytes apart.
   */
  col2im(col: number, ldc: number, dx: number, channels: number, h: number, w: number, kh: number, kw: number, padH: number, padW: number, outH: number, outW: number): void;
  /** gx[idx[i]] += g[i] for i < count, in order; idx holds float indices into gx. */
  scatter_add(g: number, idx: number, gx: number, count: number): void;
  /** For s < ns, ch < c: fills `planeBytes` (a multiple of 16) at dst + (s·c + ch)·planeBytes with bias[ch]. */
  fill_bias(dst: number, ns: number, c: number, planeBytes: number, bias: number): void;
  /**
   * Packs a strided matrix into panels `width` wide: element (o, q), o < outer, q < inner, read
   * at src + o·oStride + q·qStride, goes to dst + ((o / width)·inner·width + q·width + o % width)·4.
   * Panel padding is left as it is (the caller zeroes it).
   */
  pack(src: number, oStride: number, qStride: number, outer: number, inner: number, width: number, dst: number): void;
  /** Zeroes `bytes` bytes at dst. */
  zero(dst: number, bytes: number): void;
  /** dst = a + b (float32), over ⌈count/4⌉ whole vectors; dst may be a or b. */
  add_f32(a: number, b: number, dst: number, count: number): void;
  /** dst = max(src, 0) as `x > 0 ? x : 0`, over ⌈count/4⌉ whole vectors. */
  relu_fwd(src: number, dst: number, count: number): void;
  /** gx += x > 0 ? g : g·0, over ⌈count/4⌉ whole vectors. */
  relu_bwd(x: number, g: number, gx: number, count: number): void;
  /**
   * 2×2 stride-2 max (sign 1) / min (sign −1) pooling of planes × h × w into planes × outH × outW
   * (outW ≥ 4); argmax, when withArg ≠ 0, as idxBase + the flat index into the dense
   * planes × h × w input. Input planes start `planeStride` floats apart (h·w when dense).
   */
  maxpool2x2(x: number, out: number, arg: number, planes: number, h: number, w: number, outH: number, outW: number, sign: number, withArg: number, planeStride: number, idxBase: number): void;
  /** `maxpool2x2` of relu(x): every value rectified (`v > 0 ? v : 0`) as it is loaded. */
  maxpool2x2_relu(x: number, out: number, arg: number, planes: number, h: number, w: number, outH: number, outW: number, sign: number, withArg: number, planeStride: number, idxBase: number): void;
  /** dst[ch] += Σ over ns samples and `spatial` positions of g[s][ch][·], in float64. */
  bias_grad(g: number, dst: number, ns: number, c: number, spatial: number): void;
  /**
   * SGD heavy-ball step over ⌈count/4⌉ whole vectors, with JS's float64 arithmetic and float32
   * roundings: b = f32(momentum·buf + g); buf = b; p = f32(p − lr·b).
   */
  sgd_momentum(p: number, g: number, buf: number, count: number, lr: number, momentum: number): void;
  /**
   * Adam / AdamW step over ⌈count/4⌉ whole vectors, float64 arithmetic and float32 roundings as in
   * optim/optimizers.ts: p = f32(p·decay); g' = g + l2·p; m = f32(β1·m + (1−β1)·g');
   * v = f32(β2·v + (1−β2)·g'·g'); p = f32(p − stepSize·m / (√v / bias2Sqrt + eps)).
   */
  adam(p: number, g: number, m: number, v: number, count: number, decay: number, l2: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, stepSize: number, bias2Sqrt: number, eps: number): void;
  /**
   * Shard gradients summed in order: for `arrays` arrays at src, src + stride, … (bytes) and
   * ⌈count/4⌉ whole vectors, dst = ((((0 + a0) + a1) + …) + a_last) / divisor, every addition and
   * the division rounded to float32 (the +0 start turns −0 into +0, as JS's `0 + x` does).
   */
  sum_in_order(src: number, stride: number, arrays: number, dst: number, count: number, divisor: number): void;
  /**
   * Σ v² of `count` floats at src (count a multiple of 4 except in the last call of a series) onto
   * four float64 partial sums at acc (32 bytes): element i goes to acc[i mod 4], in order, the
   * tail beyond the last whole vector to acc[0]. Returns (acc0 + acc1) + (acc2 + acc3): the JS
   * four-lane loop's bytes.
   */
  sum_squares(src: number, count: number, acc: number): number;
  /** dst = x > 0 ? x : f32(x·slope) (float64 product), over ⌈count/4⌉ whole vectors. */
  leaky_fwd(src: number, dst: number, count: number, slope: number): void;
  /** gx = f32(gx + (x > 0 ? g : g·slope)) in float64, over ⌈count/4⌉ whole vectors. */
  leaky_bwd(x: number, g: number, gx: number, count: number, slope: number): void;
  /**
   * Batch-norm channel sums over ns samples of c planes of `spatial` floats, in float64 (four lane
   * sums and a tail, ((l0 + l1) + (l2 + l3)) + tail), into dst (f64): bn_sum Σ a;
   * bn_sqdev Σ (a − mean)²; bn_grad_sums Σ a and Σ (a·(b − mean))·invStd, two per channel.
   * Per-channel coefficients are f64 at coef + 64·ch: mean, invStd.
   */
  bn_sum(a: number, b: number, ns: number, c: number, spatial: number, coef: number, dst: number): void;
  bn_sqdev(a: number, b: number, ns: number, c: number, spatial: number, coef: number, dst: number): void;
  bn_grad_sums(a: number, b: number, ns: number, c: number, spatial: number, coef: number, dst: number): void;
  /** y = f32((x − mean)·k + shift) in float64; coefficients (f64 at coef + 64·ch) mean, k, shift. */
  bn_apply(x: number, y: number, ns: number, c: number, spatial: number, coef: number): void;
  /** gx = f32(gx + k·((dy − mdy) − ((x − mean)·invStd)·mdyx)); coefficients mean, invStd, k, mdy, mdyx. */
  bn_grad_input(dy: number, x: number, gx: number, out: number, ns: number, c: number, spatial: number, coef: number): void;
  /**
   * Softmax of one sample's logits z [c][inner] along c, inner even: per position the max, the
   * sum of exp(z − max) in class order (f64 to mx, sm), exp(z − max) in ex (f64 [c][inner]) and
   * prob = f32(exp(z − max) / sum).
   */
  softmax_xent(z: number, prob: number, ex: number, c: number, inner: number, mx: number, sm: number): void;
  /**
   * The cross-entropy's logit gradient over positions, inner a multiple of 4:
   * gz[b][k][i] = f32(gz + w[b][i]·(prob − [k = labels[b][i]])) in float64 (w f64, labels i32).
   */
  xent_grad(prob: number, w: number, labels: number, gz: number, n: number, c: number, inner: number): void;
}

/** Options of `buildKernelModule`. */
export interface KernelModuleOptions {
  /** Accumulate the GEMM / convolution products with relaxed SIMD's fused multiply-add. Default false. */
  fma?: boolean;
}

/** Micro-kernels and drivers of one blocking; exports suffixed with `suffix`. */
function family(mw: ModuleWriter, blocking: Blocking, suffix: string, withGemm: boolean, fma: boolean): void {
  const { mr: MR, nv: NV, wmr: WMR, wnt: WNT } = blocking;
  // acc + a·b: one fused multiply-add in the fma module, a multiply then an add otherwise.
  const madd = (acc: Code, a: Code, b: Code): Code => (fma ? f32x4.relaxedMadd(a, b, acc) : f32x4.add(acc, f32x4.mul(a, b)));
  const NR = 4 * NV;
  // micro[flavour][rows]: the C[rows × NR] micro-kernel, rows in 1..MR.
  // Flavours: 'strided' and 'table' as above; 'scatter' reads B strided but finds the C row of
  // row r at c + ctab[r] (ldc is then the address of ctab): the adjoint of the table flavour, which
  // adds a column-gradient row straight into a column-expanded image (see ./conv.ts).
  const micro = (flavour: 'strided' | 'table' | 'scatter', rows: number): number =>
    mw.func(null, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], ([kc, ap, as, bp, bs, c, ldc], f) => {
      const table = flavour === 'table';
      const acc = Array.from({ length: rows }, () => f.localsOf('v128', NV));
      const bv = f.localsOf('v128', NV);
      const a = f.local('v128');
      const crow = f.localsOf('i32', rows);
      const baddr = table ? f.local('i32') : bp;
      const code: Code[] = [];
      if (flavour === 'scatter') for (let r = 0; r < rows; r++) code.push(set(crow[r], i32.add(get(c), i32.load(get(ldc), 4 * r))));
      else {
        code.push(set(crow[0], get(c)));
        for (let r = 1; r < rows; r++) code.push(set(crow[r], i32.add(get(crow[r - 1]), get(ldc))));
      }
      for (let r = 0; r < rows; r++) for (let v = 0; v < NV; v++) code.push(set(acc[r][v], v128.load(get(crow[r]), 16 * v)));
      const step: Code[] = [];
      if (table) step.push(set(baddr, i32.add(get(bp), i32.load(get(bs)))));
      for (let v = 0; v < NV; v++) step.push(set(bv[v], v128.load(get(baddr), 16 * v)));
      for (let r = 0; r < rows; r++) {
        step.push(set(a, v128.load32Splat(get(ap), 4 * r)));
        for (let v = 0; v < NV; v++) step.push(set(acc[r][v], madd(get(acc[r][v]), get(a), get(bv[v]))));
      }
      step.push(set(ap, i32.add(get(ap), get(as))));
      step.push(table ? set(bs, i32.add(get(bs), i32.c(4))) : set(bp, i32.add(get(bp), get(bs))));
      code.push(doWhile(step, tee(kc, i32.sub(get(kc), i32.c(1)))));
      for (let r = 0; r < rows; r++) for (let v = 0; v < NV; v++) code.push(v128.store(get(crow[r]), get(acc[r][v]), 16 * v));
      return code;
    });
  const strided = [0];
  const tabled = [0];
  const scattered = [0];
  for (let r = 1; r <= MR; r++) {
    strided.push(micro('strided', r));
    tabled.push(micro('table', r));
    if (withGemm) scattered.push(micro('scatter', r));
  }

  /** Calls kernels[rows](...args) for a runtime `rows` in 1..kernels.length-1. */
  const dispatch = (kernels: number[], rows: Local, args: Code[]): Code =>
    kernels.slice(1).map((fn, i) => ifThen(i32.eq(get(rows), i32.c(i + 1)), call(fn, ...args)));

  if (withGemm) {
    mw.func(`gemm${suffix}`, Array(11).fill('i32'), [], ([m, nPad, k, a, aPanel, as, b, bPanel, bs, c, ldc], f) => {
      const [i0, j0, ap, bp, ct, mFull, rem] = f.localsOf('i32', 7);
      const args = (): Code[] => [get(k), get(ap), get(as), get(bp), get(bs), get(ct), get(ldc)];
      return [
        set(mFull, i32.sub(get(m), i32.remU(get(m), i32.c(MR)))),
        set(rem, i32.sub(get(m), get(mFull))),
        set(bp, get(b)),
        forRange(j0, i32.c(0), get(nPad), i32.c(NR), [
          set(ap, get(a)),
          set(ct, i32.add(get(c), i32.shl(get(j0), i32.c(2)))),
          forRange(i0, i32.c(0), get(mFull), i32.c(MR), [
            call(strided[MR], ...args()),
            set(ap, i32.add(get(ap), get(aPanel))),
            set(ct, i32.add(get(ct), i32.mul(get(ldc), i32.c(MR)))),
          ]),
          dispatch(strided.slice(0, MR), rem, args()),
          set(bp, i32.add(get(bp), get(bPanel))),
        ]),
      ];
    });

    // gemm with row i of C at c + ctab[i] (bytes): rows may overlap in memory as long as no two
    // rows of one MR-row panel do; each panel's rows are read, summed onto and written back in turn.
    mw.func(`gemm_scatter${suffix}`, Array(11).fill('i32'), [], ([m, nPad, k, a, aPanel, as, b, bPanel, bs, c, ctab], f) => {
      const [i0, j0, ap, bp, ct, tp, mFull, rem] = f.localsOf('i32', 8);
      const args = (): Code[] => [get(k), get(ap), get(as), get(bp), get(bs), get(ct), get(tp)];
      return [
        set(mFull, i32.sub(get(m), i32.remU(get(m), i32.c(MR)))),
        set(rem, i32.sub(get(m), get(mFull))),
        set(bp, get(b)),
        forRange(j0, i32.c(0), get(nPad), i32.c(NR), [
          set(ap, get(a)),
          set(tp, get(ctab)),
          set(ct, i32.add(get(c), i32.shl(get(j0), i32.c(2)))),
          forRange(i0, i32.c(0), get(mFull), i32.c(MR), [
            call(scattered[MR], ...args()),
            set(ap, i32.add(get(ap), get(aPanel))),
            set(tp, i32.add(get(tp), i32.c(4 * MR))),
          ]),
          dispatch(scattered.slice(0, MR), rem, args()),
          set(bp, i32.add(get(bp), get(bPanel))),
        ]),
      ];
    });
  }

  // Taps are taken in blocks of kcTaps (so a block's input rows stay in L1), and within a block
  // every channel panel passes over one tile of positions before the next tile (so they share it).
  // Blocking never changes the result: the micro-kernel resumes each sum from C, in tap order.
  mw.func(`conv_fwd${suffix}`, Array(11).fill('i32'), [], ([ns, cOut, taps, kcTaps, w, x, xStride, tab, out, outStride, ldc], f) => {
    const [s, co0, pb, xs, os, ap, rows, cFull, kb, kc, wk, tk] = f.localsOf('i32', 12);
    const args = (): Code[] => [get(kc), get(ap), i32.c(4 * MR), i32.add(get(xs), get(pb)), get(tk), i32.add(i32.add(get(os), i32.mul(get(co0), get(ldc))), get(pb)), get(ldc)];
    // Panel co0 of the filter starts at w + co0·taps floats; block kb of it kb·MR floats later.
    const panel = (): Code => set(ap, i32.add(get(wk), i32.shl(i32.mul(get(co0), get(taps)), i32.c(2))));
    return [
      set(cFull, i32.sub(get(cOut), i32.remU(get(cOut), i32.c(MR)))),
      set(rows, i32.sub(get(cOut), get(cFull))),
      forRange(s, i32.c(0), get(ns), i32.c(1), [
        set(xs, i32.add(get(x), i32.mul(get(s), get(xStride)))),
        set(os, i32.add(get(out), i32.mul(get(s), get(outStride)))),
        forRange(kb, i32.c(0), get(taps), get(kcTaps), [
          set(kc, i32.minS(get(kcTaps), i32.sub(get(taps), get(kb)))),
          set(wk, i32.add(get(w), i32.shl(i32.mul(get(kb), i32.c(MR)), i32.c(2)))),
          set(tk, i32.add(get(tab), i32.shl(get(kb), i32.c(2)))),
          forRange(pb, i32.c(0), get(ldc), i32.c(4 * NR), [
            forRange(co0, i32.c(0), get(cFull), i32.c(MR), [panel(), call(tabled[MR], ...args())]),
            ifThen(get(rows), [set(co0, get(cFull)), panel(), dispatch(tabled.slice(0, MR), rows, args())]),
          ]),
        ]),
      ]),
    ];
  });

  // wg[rows][taps]: weight-gradient tiles of rows ≤ WMR channels × taps ≤ WNT filter taps.
  const wgrad = (rows: number, nt: number): number =>
    mw.func(null, Array(10).fill('i32'), [], ([len, dy, dyPlane, x, tab, acc, accRow, ns, dyStride, xStride], f) => {
      const sums = Array.from({ length: rows }, () => f.localsOf('v128', nt));
      const xv = f.localsOf('v128', nt);
      const d = f.local('v128');
      const xo = f.localsOf('i32', nt);
      const dr = f.localsOf('i32', rows);
      const ar = f.localsOf('i32', rows);
      const p = f.local('i32');
      const code: Code[] = [];
      for (let t = 0; t < nt; t++) code.push(set(xo[t], i32.add(get(x), i32.load(get(tab), 4 * t))));
      code.push(set(dr[0], get(dy)), set(ar[0], get(acc)));
      for (let r = 1; r < rows; r++) code.push(set(dr[r], i32.add(get(dr[r - 1]), get(dyPlane))), set(ar[r], i32.add(get(ar[r - 1]), get(accRow))));
      for (let r = 0; r < rows; r++) for (let t = 0; t < nt; t++) code.push(set(sums[r][t], v128.load(get(ar[r]), 16 * t)));
      const step: Code[] = [];
      for (let t = 0; t < nt; t++) step.push(set(xv[t], v128.load(i32.add(get(xo[t]), get(p)))));
      for (let r = 0; r < rows; r++) {
        step.push(set(d, v128.load(i32.add(get(dr[r]), get(p)))));
        for (let t = 0; t < nt; t++) step.push(set(sums[r][t], madd(get(sums[r][t]), get(d), get(xv[t]))));
      }
      // Samples one after another on the same accumulators (kept in registers), ns ≥ 1.
      const nextSample: Code[] = [];
      for (let r = 0; r < rows; r++) nextSample.push(set(dr[r], i32.add(get(dr[r]), get(dyStride))));
      for (let t = 0; t < nt; t++) nextSample.push(set(xo[t], i32.add(get(xo[t]), get(xStride))));
      code.push(doWhile([set(p, i32.c(0)), doWhile(step, i32.ltS(tee(p, i32.add(get(p), i32.c(16))), get(len))), nextSample], tee(ns, i32.sub(get(ns), i32.c(1)))));
      for (let r = 0; r < rows; r++) for (let t = 0; t < nt; t++) code.push(v128.store(get(ar[r]), get(sums[r][t]), 16 * t));
      return code;
    });
  const wg: number[][] = [[]];
  for (let r = 1; r <= WMR; r++) {
    wg.push([0]);
    for (let t = 1; t <= WNT; t++) wg[r].push(wgrad(r, t));
  }

  mw.func(`conv_wgrad${suffix}`, Array(11).fill('i32'), [], ([ns, cOut, taps, dy, dyStride, dyPlane, len, x, xStride, tab, acc], f) => {
    const [co0, t0, rows, nt] = f.localsOf('i32', 4);
    const args = (): Code[] => [
      get(len),
      i32.add(get(dy), i32.mul(get(co0), get(dyPlane))),
      get(dyPlane),
      get(x),
      i32.add(get(tab), i32.shl(get(t0), i32.c(2))),
      i32.add(get(acc), i32.shl(i32.add(i32.mul(get(co0), get(taps)), get(t0)), i32.c(4))),
      i32.shl(get(taps), i32.c(4)),
      get(ns),
      get(dyStride),
      get(xStride),
    ];
    const edges: Code[] = [];
    for (let r = 1; r <= WMR; r++) for (let t = 1; t <= WNT; t++) if (r !== WMR || t !== WNT) edges.push(ifThen(i32.and(i32.eq(get(rows), i32.c(r)), i32.eq(get(nt), i32.c(t))), call(wg[r][t], ...args())));
    // Each tile runs over all ns samples before the next, on accumulators held in registers.
    return ifThen(i32.gtS(get(ns), i32.c(0)), [
      forRange(co0, i32.c(0), get(cOut), i32.c(WMR), [
        set(rows, i32.minS(i32.c(WMR), i32.sub(get(cOut), get(co0)))),
        forRange(t0, i32.c(0), get(taps), i32.c(WNT), [
          set(nt, i32.minS(i32.c(WNT), i32.sub(get(taps), get(t0)))),
          ifThen(i32.and(i32.eq(get(rows), i32.c(WMR)), i32.eq(get(nt), i32.c(WNT))), call(wg[WMR][WNT], ...args()), edges),
        ]),
      ]),
    ]);
  });
}

/** The kernel module's bytes for a register blocking (the fma variant needs relaxed SIMD). */
export function buildKernelModule(shape: KernelShape = DEFAULT_SHAPE, options: KernelModuleOptions = {}): Uint8Array<ArrayBuffer> {
  const fma = options.fma ?? false;
  const mw = new ModuleWriter();
  family(mw, shape.main, '', true, fma);
  family(mw, shape.alt, '_alt', false, fma);

  mw.func('wgrad_finish', ['i32', 'i32', 'i32'], [], ([acc, count, dst], f) => {
    const [i, v] = [f.local('i32'), f.local('v128')];
    return forRange(i, i32.c(0), get(count), i32.c(1), [
      set(v, v128.load(i32.add(get(acc), i32.shl(get(i), i32.c(4))))),
      f32.store(
        i32.add(get(dst), i32.shl(get(i), i32.c(2))),
        f32.add(f32.load(i32.add(get(dst), i32.shl(get(i), i32.c(2)))), f32.add(f32.add(f32x4.extractLane(get(v), 0), f32x4.extractLane(get(v), 1)), f32.add(f32x4.extractLane(get(v), 2), f32x4.extractLane(get(v), 3)))),
      ),
    ]);
  });

  const copy2d = mw.func('copy2d', Array(10).fill('i32'), [], ([src, srcPlane, srcRow, dst, dstPlane, dstRow, planes, rows, len, add], f) => {
    const [pl, r, s, d, e, ev] = f.localsOf('i32', 6);
    return forRange(pl, i32.c(0), get(planes), i32.c(1), [
      forRange(r, i32.c(0), get(rows), i32.c(1), [
        set(s, i32.add(i32.add(get(src), i32.mul(get(pl), get(srcPlane))), i32.mul(get(r), get(srcRow)))),
        set(d, i32.add(i32.add(get(dst), i32.mul(get(pl), get(dstPlane))), i32.mul(get(r), get(dstRow)))),
        set(e, i32.add(get(s), i32.shl(get(len), i32.c(2)))),
        set(ev, i32.add(get(s), i32.shl(i32.and(get(len), i32.c(-4)), i32.c(2)))),
        ifThen(
          get(add),
          [
            forRange(s, get(s), get(ev), i32.c(16), [v128.store(get(d), f32x4.add(v128.load(get(d)), v128.load(get(s)))), set(d, i32.add(get(d), i32.c(16)))]),
            forRange(s, get(s), get(e), i32.c(4), [f32.store(get(d), f32.add(f32.load(get(d)), f32.load(get(s)))), set(d, i32.add(get(d), i32.c(4)))]),
          ],
          [
            forRange(s, get(s), get(ev), i32.c(16), [v128.store(get(d), v128.load(get(s))), set(d, i32.add(get(d), i32.c(16)))]),
            forRange(s, get(s), get(e), i32.c(4), [f32.store(get(d), f32.load(get(s))), set(d, i32.add(get(d), i32.c(4)))]),
          ],
        ),
      ]),
    ]);
  });

  // Column expansion (see ./conv.ts): dst[pl][kx][y][ox] = src[pl][y − padH][ox + kx − padW], zero
  // outside the image, for pl < planes, kx < kw, y < hp = h + 2·padH, ox < outW; then `slack` zero bytes.
  mw.func('expand', Array(10).fill('i32'), [], ([src, dst, planes, h, w, kw, padH, padW, outW, slack], f) => {
    const [kx, ox0, ox1, hp, plane] = f.localsOf('i32', 5);
    return [
      set(hp, i32.add(get(h), i32.shl(get(padH), i32.c(1)))),
      set(plane, i32.shl(i32.mul(i32.mul(get(kw), get(hp)), get(outW)), i32.c(2))),
      memoryFill(get(dst), i32.c(0), i32.add(i32.mul(get(planes), get(plane)), get(slack))),
      forRange(kx, i32.c(0), get(kw), i32.c(1), [
        // Output columns whose input column ox + kx − padW lies inside [0, w).
        set(ox0, i32.maxS(i32.c(0), i32.sub(get(padW), get(kx)))),
        set(ox1, i32.minS(get(outW), i32.sub(i32.add(get(w), get(padW)), get(kx)))),
        ifThen(
          i32.gtS(get(ox1), get(ox0)),
          call(
            copy2d,
            i32.add(get(src), i32.shl(i32.sub(i32.add(get(ox0), get(kx)), get(padW)), i32.c(2))),
            i32.shl(i32.mul(get(h), get(w)), i32.c(2)),
            i32.shl(get(w), i32.c(2)),
            i32.add(get(dst), i32.shl(i32.add(i32.mul(i32.add(i32.mul(get(kx), get(hp)), get(padH)), get(outW)), get(ox0)), i32.c(2))),
            get(plane),
            i32.shl(get(outW), i32.c(2)),
            get(planes),
            get(h),
            i32.sub(get(ox1), get(ox0)),
            i32.c(0),
          ),
        ),
      ]),
    ];
  });

  // Strided column expansion (see ./conv.ts) and its adjoint walk the same elements: expanded
  // element xe[pl][kx][ry][yy][ox] (at `at`, advancing one row of outW per yy) pairs with image
  // element img[pl][yy·sy + ry − padH][ox·sx + kx − padW] (at `px`) where that lies inside the h×w
  // image (the unsigned compares reject negative rows and columns too). `pair` moves one float.
  const stridedPairs = (f: FuncScope, img: Local, xe: Local, [planes, h, w, kw, padH, padW, outW, sy, sx, hq]: Local[], pair: (at: Code, px: Code) => Code): Code => {
    const [pl, kx, ry, yy, ox, r, x, row, at] = f.localsOf('i32', 9);
    return [
      set(at, get(xe)),
      forRange(pl, i32.c(0), get(planes), i32.c(1), [
        forRange(kx, i32.c(0), get(kw), i32.c(1), [
          forRange(ry, i32.c(0), get(sy), i32.c(1), [
            forRange(yy, i32.c(0), get(hq), i32.c(1), [
              set(r, i32.sub(i32.add(i32.mul(get(yy), get(sy)), get(ry)), get(padH))),
              ifThen(i32.ltU(get(r), get(h)), [
                set(row, i32.add(get(img), i32.shl(i32.mul(i32.add(i32.mul(get(pl), get(h)), get(r)), get(w)), i32.c(2)))),
                forRange(ox, i32.c(0), get(outW), i32.c(1), [
                  set(x, i32.sub(i32.add(i32.mul(get(ox), get(sx)), get(kx)), get(padW))),
                  ifThen(i32.ltU(get(x), get(w)), pair(i32.add(get(at), i32.shl(get(ox), i32.c(2))), i32.add(get(row), i32.shl(get(x), i32.c(2))))),
                ]),
              ]),
              set(at, i32.add(get(at), i32.shl(get(outW), i32.c(2)))),
            ]),
          ]),
        ]),
      ]),
    ];
  };

  // dst[pl][kx][ry][yy][ox] = src[pl][yy·sy + ry − padH][ox·sx + kx − padW], zero outside the image;
  // then `slack` zero bytes. Scalar: it moves a few floats per multiply-add the convolution then does.
  mw.func('expand_strided', Array(13).fill('i32'), [], ([src, dst, planes, h, w, kw, padH, padW, outW, slack, sy, sx, hq], f) => [
    memoryFill(get(dst), i32.c(0), i32.add(i32.shl(i32.mul(i32.mul(i32.mul(get(planes), get(kw)), i32.mul(get(sy), get(hq))), get(outW)), i32.c(2)), get(slack))),
    stridedPairs(f, src, dst, [planes, h, w, kw, padH, padW, outW, sy, sx, hq], (at, px) => f32.store(at, f32.load(px))),
  ]);

  // The adjoint of expand_strided, adding each expanded float back onto the image element it was read from.
  mw.func('fold_strided', Array(12).fill('i32'), [], ([xe, dx, planes, h, w, kw, padH, padW, outW, sy, sx, hq], f) => {
    const p = f.local('i32');
    return stridedPairs(f, dx, xe, [planes, h, w, kw, padH, padW, outW, sy, sx, hq], (at, px) => [set(p, px), f32.store(get(p), f32.add(f32.load(get(p)), f32.load(at)))]);
  });

  // col2im: dx[c][y][x] += col[(c·kh + i)·kw + j][oy·outW + ox] where y = oy + i − padH and
  // x = ox + j − padW fall inside the image; col rows are ldc bytes apart. Taps in order, so every
  // dx element receives its terms in tap order.
  mw.func('col2im', Array(12).fill('i32'), [], ([col, ldc, dx, channels, h, w, kh, kw, padH, padW, outH, outW], f) => {
    const [c, i, j, t, lo, hi, y0, y1] = f.localsOf('i32', 8);
    return [
      set(t, i32.c(0)),
      forRange(c, i32.c(0), get(channels), i32.c(1), [
        forRange(i, i32.c(0), get(kh), i32.c(1), [
          set(y0, i32.maxS(i32.c(0), i32.sub(get(padH), get(i)))),
          set(y1, i32.minS(get(outH), i32.sub(i32.add(get(h), get(padH)), get(i)))),
          forRange(j, i32.c(0), get(kw), i32.c(1), [
            set(lo, i32.maxS(i32.c(0), i32.sub(get(padW), get(j)))),
            set(hi, i32.minS(get(outW), i32.sub(i32.add(get(w), get(padW)), get(j)))),
            ifThen(
              i32.and(i32.gtS(get(hi), get(lo)), i32.gtS(get(y1), get(y0))),
              call(
                copy2d,
                i32.add(i32.add(get(col), i32.mul(get(t), get(ldc))), i32.shl(i32.add(i32.mul(get(y0), get(outW)), get(lo)), i32.c(2))),
                i32.c(0),
                i32.shl(get(outW), i32.c(2)),
                i32.add(get(dx), i32.shl(i32.add(i32.mul(i32.add(i32.mul(get(c), get(h)), i32.sub(i32.add(get(y0), get(i)), get(padH))), get(w)), i32.sub(i32.add(get(lo), get(j)), get(padW))), i32.c(2))),
                i32.c(0),
                i32.shl(get(w), i32.c(2)),
                i32.c(1),
                i32.sub(get(y1), get(y0)),
                i32.sub(get(hi), get(lo)),
                i32.c(1),
              ),
            ),
            set(t, i32.add(get(t), i32.c(1))),
          ]),
        ]),
      ]),
    ];
  });

  // gx[idx[i]] += g[i] for i < count, in order (max-pooling backward).
  mw.func('scatter_add', ['i32', 'i32', 'i32', 'i32'], [], ([g, idx, gx, count], f) => {
    const [i, a] = f.localsOf('i32', 2);
    return forRange(i, i32.c(0), i32.shl(get(count), i32.c(2)), i32.c(4), [
      set(a, i32.add(get(gx), i32.shl(i32.load(i32.add(get(idx), get(i))), i32.c(2)))),
      f32.store(get(a), f32.add(f32.load(get(a)), f32.load(i32.add(get(g), get(i))))),
    ]);
  });

  mw.func('fill_bias', Array(5).fill('i32'), [], ([dst, ns, c, planeBytes, bias], f) => {
    const [s, ch, d, e] = f.localsOf('i32', 4);
    const v = f.local('v128');
    return [
      set(d, get(dst)),
      forRange(s, i32.c(0), get(ns), i32.c(1), [
        forRange(ch, i32.c(0), get(c), i32.c(1), [
          set(v, v128.load32Splat(i32.add(get(bias), i32.shl(get(ch), i32.c(2))))),
          set(e, i32.add(get(d), get(planeBytes))),
          forRange(d, get(d), get(e), i32.c(16), v128.store(get(d), get(v))),
        ]),
      ]),
    ];
  });

  mw.func('pack', Array(7).fill('i32'), [], ([src, oStride, qStride, outer, inner, width, dst], f) => {
    const [o, q, s, d, step] = f.localsOf('i32', 5);
    return [
      set(step, i32.shl(get(width), i32.c(2))),
      forRange(o, i32.c(0), get(outer), i32.c(1), [
        set(s, i32.add(get(src), i32.mul(get(o), get(oStride)))),
        set(d, i32.add(get(dst), i32.shl(i32.add(i32.mul(i32.mul(i32.divU(get(o), get(width)), get(inner)), get(width)), i32.remU(get(o), get(width))), i32.c(2)))),
        forRange(q, i32.c(0), get(inner), i32.c(1), [f32.store(get(d), f32.load(get(s))), set(s, i32.add(get(s), get(qStride))), set(d, i32.add(get(d), get(step)))]),
      ]),
    ];
  });

  mw.func('zero', ['i32', 'i32'], [], ([dst, bytes]) => memoryFill(get(dst), i32.c(0), get(bytes)));

  // ReLU on whole vectors (the caller's regions are padded to a multiple of 4 floats). A compare
  // mask rather than max(x, 0): NaN maps to 0 and −0 to +0, exactly like `x > 0 ? x : 0`.
  // dst = a + b in float32 (the JS loops' float64 sum of two floats rounded once is this sum).
  mw.func('add_f32', ['i32', 'i32', 'i32', 'i32'], [], ([a, b, dst, count], f) => {
    const [o, end] = f.localsOf('i32', 2);
    return [
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(o, i32.c(0), get(end), i32.c(16), [v128.store(i32.add(get(dst), get(o)), f32x4.add(v128.load(i32.add(get(a), get(o))), v128.load(i32.add(get(b), get(o)))))]),
    ];
  });

  mw.func('relu_fwd', ['i32', 'i32', 'i32'], [], ([src, dst, count], f) => {
    const [i, end] = f.localsOf('i32', 2);
    const v = f.local('v128');
    return [
      set(end, i32.add(get(src), i32.shl(get(count), i32.c(2)))),
      forRange(i, get(src), get(end), i32.c(16), [
        set(v, v128.load(get(i))),
        v128.store(i32.add(get(dst), i32.sub(get(i), get(src))), bits.and(get(v), f32x4.gt(get(v), v128.zero()))),
      ]),
    ];
  });

  // gx += x > 0 ? g : g·0 (the product keeps Inf·0 = NaN, as the JS kernel does).
  mw.func('relu_bwd', ['i32', 'i32', 'i32', 'i32'], [], ([x, g, gx, count], f) => {
    const [i, off, end] = f.localsOf('i32', 3);
    const gv = f.local('v128');
    return [
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(gv, v128.load(i32.add(get(g), get(off)))),
        set(i, i32.add(get(gx), get(off))),
        v128.store(get(i), f32x4.add(v128.load(get(i)), bits.select(get(gv), f32x4.mul(get(gv), v128.zero()), f32x4.gt(v128.load(i32.add(get(x), get(off))), v128.zero())))),
      ]),
    ];
  });

  // 2×2 max (sign 1) or min (sign −1) pooling with stride 2, four outputs of a row at a time;
  // outW ≥ 4, the last group of a row overlaps the previous one. The first extreme element of the
  // window in scan order wins, and the first NaN wins over everything: `take` below is the JS
  // kernel's `v > best || v !== v` with its break on NaN.
  const EVEN = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
  const ODD = EVEN.map((b) => b + 4);
  // The `_relu` variant rectifies every value as it loads it (`v > 0 ? v : 0`, NaN to 0): it pools relu(x).
  for (const rectify of [false, true]) mw.func(rectify ? 'maxpool2x2_relu' : 'maxpool2x2', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'i32', 'i32'], [], ([x, out, arg, planes, h, w, outH, outW, sign, withArg, planeStride, idxBase], f) => {
    const [pl, oy, ox, oc, row, idx, o] = f.localsOf('i32', 7);
    const [sv, lo, hi, best, bi, cand, take] = f.localsOf('v128', 7);
    const load = (dst: Local, addr: Code, offset = 0): Code =>
      rectify ? [set(dst, v128.load(addr, offset)), set(dst, bits.and(get(dst), f32x4.gt(get(dst), v128.zero())))] : set(dst, v128.load(addr, offset));
    const consider = (value: Code, index: Code): Code => [
      set(cand, f32x4.mul(value, get(sv))),
      set(take, bits.andNot(bits.or(f32x4.gt(get(cand), get(best)), f32x4.ne(get(cand), get(cand))), f32x4.ne(get(best), get(best)))),
      set(best, bits.select(get(cand), get(best), get(take))),
      set(bi, bits.select(index, get(bi), get(take))),
    ];
    const rowAddr = (dy: number): Code => i32.add(get(row), i32.add(i32.shl(get(oc), i32.c(3)), dy === 0 ? i32.c(0) : i32.shl(get(w), i32.c(2))));
    return [
      set(sv, f32x4.splat(get(sign))),
      forRange(pl, i32.c(0), get(planes), i32.c(1), [
        forRange(oy, i32.c(0), get(outH), i32.c(1), [
          // Element index of the window row (dense), its address (planes planeStride apart), and the first output of the row.
          set(idx, i32.add(get(idxBase), i32.mul(i32.add(i32.mul(get(pl), get(h)), i32.shl(get(oy), i32.c(1))), get(w)))),
          set(row, i32.add(get(x), i32.shl(i32.add(i32.mul(get(pl), get(planeStride)), i32.mul(i32.shl(get(oy), i32.c(1)), get(w))), i32.c(2)))),
          set(o, i32.mul(i32.add(i32.mul(get(pl), get(outH)), get(oy)), get(outW))),
          forRange(ox, i32.c(0), get(outW), i32.c(4), [
            set(oc, i32.minS(get(ox), i32.sub(get(outW), i32.c(4)))),
            load(lo, rowAddr(0)),
            load(hi, rowAddr(0), 16),
            set(best, f32x4.mul(bits.shuffle(get(lo), get(hi), EVEN), get(sv))),
            set(bi, i32x4.add(i32x4.splat(i32.add(get(idx), i32.shl(get(oc), i32.c(1)))), i32x4.c(0, 2, 4, 6))),
            consider(bits.shuffle(get(lo), get(hi), ODD), i32x4.add(get(bi), i32x4.c(1, 1, 1, 1))),
            load(lo, rowAddr(1)),
            load(hi, rowAddr(1), 16),
            // bi may have moved to the odd lane: rebuild the row-1 indices from the even column.
            consider(bits.shuffle(get(lo), get(hi), EVEN), i32x4.add(i32x4.splat(i32.add(i32.add(get(idx), i32.shl(get(oc), i32.c(1))), get(w))), i32x4.c(0, 2, 4, 6))),
            consider(bits.shuffle(get(lo), get(hi), ODD), i32x4.add(i32x4.splat(i32.add(i32.add(get(idx), i32.shl(get(oc), i32.c(1))), get(w))), i32x4.c(1, 3, 5, 7))),
            v128.store(i32.add(get(out), i32.shl(i32.add(get(o), get(oc)), i32.c(2))), f32x4.mul(get(best), get(sv))),
            ifThen(get(withArg), v128.store(i32.add(get(arg), i32.shl(i32.add(get(o), get(oc)), i32.c(2))), get(bi))),
          ]),
        ]),
      ]),
    ];
  });

  // dst[ch] += Σ_s Σ_e g[s][ch][e], summed in float64: two f64x2 accumulators per channel
  // (lanes of each f32x4) plus a scalar one for the spatial tail, added as ((l0+l1)+(l2+l3))+tail.
  const HIGH = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  mw.func('bias_grad', ['i32', 'i32', 'i32', 'i32', 'i32'], [], ([g, dst, ns, c, spatial], f) => {
    const [ch, s, p, e, ev] = f.localsOf('i32', 5);
    const [s0, s1, v] = f.localsOf('v128', 3);
    const tail = f.local('f64');
    return forRange(ch, i32.c(0), get(c), i32.c(1), [
      set(s0, v128.zero()),
      set(s1, v128.zero()),
      set(tail, f64.promoteF32(f32.c(0))),
      forRange(s, i32.c(0), get(ns), i32.c(1), [
        set(p, i32.add(get(g), i32.shl(i32.mul(i32.add(i32.mul(get(s), get(c)), get(ch)), get(spatial)), i32.c(2)))),
        set(e, i32.add(get(p), i32.shl(get(spatial), i32.c(2)))),
        set(ev, i32.add(get(p), i32.shl(i32.and(get(spatial), i32.c(-4)), i32.c(2)))),
        forRange(p, get(p), get(ev), i32.c(16), [
          set(v, v128.load(get(p))),
          set(s0, f64x2.add(get(s0), f64x2.promoteLow(get(v)))),
          set(s1, f64x2.add(get(s1), f64x2.promoteLow(bits.shuffle(get(v), get(v), HIGH)))),
        ]),
        forRange(p, get(p), get(e), i32.c(4), set(tail, f64.add(get(tail), f64.promoteF32(f32.load(get(p)))))),
      ]),
      f32.store(
        i32.add(get(dst), i32.shl(get(ch), i32.c(2))),
        f64.demoteToF32(
          f64.add(
            f64.promoteF32(f32.load(i32.add(get(dst), i32.shl(get(ch), i32.c(2))))),
            f64.add(f64.add(f64.add(f64x2.extractLane(get(s0), 0), f64x2.extractLane(get(s0), 1)), f64.add(f64x2.extractLane(get(s1), 0), f64x2.extractLane(get(s1), 1))), get(tail)),
          ),
        ),
      ),
    ]);
  });
  // Optimizer steps: each f32x4 is split into two f64x2 halves, computed in float64 exactly as the
  // JS loops do (same operations, same order, no fused multiply-add), rounded to f32 where the JS
  // stores into a Float32Array, and joined back.
  const lo = (v: Code): Code => f64x2.promoteLow(v);
  const hi = (v: Code): Code => f64x2.promoteLow(bits.shuffle(v, v, HIGH));
  const JOIN = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
  const join = (l: Code, h: Code): Code => bits.shuffle(f64x2.demoteZero(l), f64x2.demoteZero(h), JOIN);
  /** x rounded to f32 and widened back (what reading back a Float32Array store gives). */
  const round = (x: Code): Code => f64x2.promoteLow(f64x2.demoteZero(x));

  mw.func('sgd_momentum', ['i32', 'i32', 'i32', 'i32', 'f64', 'f64'], [], ([p, g, buf, count, lr, momentum], f) => {
    const [off, end] = f.localsOf('i32', 2);
    const [vl, vm, gv, bl, bh, pv] = f.localsOf('v128', 6);
    const half = (b: Local, take: (v: Code) => Code): Code => set(b, round(f64x2.add(f64x2.mul(get(vm), take(v128.load(i32.add(get(buf), get(off))))), take(get(gv)))));
    return [
      set(vl, f64x2.splat(get(lr))),
      set(vm, f64x2.splat(get(momentum))),
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(gv, v128.load(i32.add(get(g), get(off)))),
        half(bl, lo),
        half(bh, hi),
        v128.store(i32.add(get(buf), get(off)), join(get(bl), get(bh))),
        set(pv, v128.load(i32.add(get(p), get(off)))),
        v128.store(i32.add(get(p), get(off)), join(f64x2.sub(lo(get(pv)), f64x2.mul(get(vl), get(bl))), f64x2.sub(hi(get(pv)), f64x2.mul(get(vl), get(bh))))),
      ]),
    ];
  });

  mw.func('adam', ['i32', 'i32', 'i32', 'i32', 'i32', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64'], [], ([p, g, m, v, count, decay, l2, beta1, omb1, beta2, omb2, stepSize, bias2Sqrt, eps], f) => {
    const [off, end] = f.localsOf('i32', 2);
    const [cDecay, cL2, cB1, cO1, cB2, cO2, cStep, cBias, cEps] = f.localsOf('v128', 9);
    const [pv, gv, mv, vv] = f.localsOf('v128', 4);
    const [p1, gg, m1, v1] = f.localsOf('v128', 4);
    const outs = [f.localsOf('v128', 2), f.localsOf('v128', 2), f.localsOf('v128', 2)]; // p, m, v per half
    const half = (take: (x: Code) => Code, h: number): Code => [
      set(p1, round(f64x2.mul(take(get(pv)), get(cDecay)))),
      set(gg, f64x2.add(take(get(gv)), f64x2.mul(get(cL2), get(p1)))),
      set(m1, round(f64x2.add(f64x2.mul(get(cB1), take(get(mv))), f64x2.mul(get(cO1), get(gg))))),
      set(v1, round(f64x2.add(f64x2.mul(get(cB2), take(get(vv))), f64x2.mul(f64x2.mul(get(cO2), get(gg)), get(gg))))),
      set(outs[0][h], f64x2.sub(get(p1), f64x2.div(f64x2.mul(get(cStep), get(m1)), f64x2.add(f64x2.div(f64x2.sqrt(get(v1)), get(cBias)), get(cEps))))),
      set(outs[1][h], get(m1)),
      set(outs[2][h], get(v1)),
    ];
    const at = (base: Local): Code => i32.add(get(base), get(off));
    return [
      ...([[cDecay, decay], [cL2, l2], [cB1, beta1], [cO1, omb1], [cB2, beta2], [cO2, omb2], [cStep, stepSize], [cBias, bias2Sqrt], [cEps, eps]] as const).map(([c, x]) => set(c, f64x2.splat(get(x)))),
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(pv, v128.load(at(p))),
        set(gv, v128.load(at(g))),
        set(mv, v128.load(at(m))),
        set(vv, v128.load(at(v))),
        half(lo, 0),
        half(hi, 1),
        v128.store(at(p), join(get(outs[0][0]), get(outs[0][1]))),
        v128.store(at(m), join(get(outs[1][0]), get(outs[1][1]))),
        v128.store(at(v), join(get(outs[2][0]), get(outs[2][1]))),
      ]),
    ];
  });

  // Reductions of shard results on the coordinator (engine's reduce.ts): the float32 sum in shard
  // order, and Σ v² in float64 in four lanes (element i in lane i mod 4, the tail in lane 0).
  mw.func('sum_in_order', ['i32', 'i32', 'i32', 'i32', 'i32', 'f32'], [], ([src, stride, arrays, dst, count, divisor], f) => {
    const [off, end, a, s] = f.localsOf('i32', 4);
    const [acc, dv] = f.localsOf('v128', 2);
    return [
      set(dv, f32x4.splat(get(divisor))),
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(acc, v128.zero()),
        set(a, i32.add(get(src), get(off))),
        forRange(s, i32.c(0), get(arrays), i32.c(1), [set(acc, f32x4.add(get(acc), v128.load(get(a)))), set(a, i32.add(get(a), get(stride)))]),
        v128.store(i32.add(get(dst), get(off)), f32x4.div(get(acc), get(dv))),
      ]),
    ];
  });
  mw.func('sum_squares', ['i32', 'i32', 'i32'], ['f64'], ([src, count, acc], f) => {
    const [p, e, ev] = f.localsOf('i32', 3);
    const [v, s01, s23] = f.localsOf('v128', 3);
    const x = f.local('f64');
    const lane = (i: number): Code => f64.load(get(acc), 8 * i);
    return [
      set(s01, v128.load(get(acc))),
      set(s23, v128.load(get(acc), 16)),
      set(e, i32.add(get(src), i32.shl(get(count), i32.c(2)))),
      set(ev, i32.add(get(src), i32.shl(i32.and(get(count), i32.c(-4)), i32.c(2)))),
      forRange(p, get(src), get(ev), i32.c(16), [
        set(v, v128.load(get(p))),
        set(s01, f64x2.add(get(s01), f64x2.mul(f64x2.promoteLow(get(v)), f64x2.promoteLow(get(v))))),
        set(s23, f64x2.add(get(s23), f64x2.mul(f64x2.promoteLow(bits.shuffle(get(v), get(v), HIGH)), f64x2.promoteLow(bits.shuffle(get(v), get(v), HIGH))))),
      ]),
      v128.store(get(acc), get(s01)),
      v128.store(get(acc), get(s23), 16),
      forRange(p, get(p), get(e), i32.c(4), [set(x, f64.promoteF32(f32.load(get(p)))), f64.store(get(acc), f64.add(lane(0), f64.mul(get(x), get(x))))]),
      f64.add(f64.add(lane(0), lane(1)), f64.add(lane(2), lane(3))),
    ];
  });

  // Leaky ReLU in float64 like the JS loop: y = x > 0 ? x : f32(x·slope), over whole vectors.
  mw.func('leaky_fwd', ['i32', 'i32', 'i32', 'f64'], [], ([src, dst, count, slope], f) => {
    const [off, end] = f.localsOf('i32', 2);
    const [v, sl] = f.localsOf('v128', 2);
    return [
      set(sl, f64x2.splat(get(slope))),
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(v, v128.load(i32.add(get(src), get(off)))),
        v128.store(i32.add(get(dst), get(off)), bits.select(get(v), join(f64x2.mul(lo(get(v)), get(sl)), f64x2.mul(hi(get(v)), get(sl))), f32x4.gt(get(v), v128.zero()))),
      ]),
    ];
  });

  // gx = f32(gx + (x > 0 ? g : g·slope)) in float64 like the JS loop, over whole vectors.
  mw.func('leaky_bwd', ['i32', 'i32', 'i32', 'i32', 'f64'], [], ([x, g, gx, count, slope], f) => {
    const [off, end, a] = f.localsOf('i32', 3);
    const [gv, gxv, sl] = f.localsOf('v128', 3);
    const sum = (take: (v: Code) => Code, scaled: boolean): Code => f64x2.add(take(get(gxv)), scaled ? f64x2.mul(take(get(gv)), get(sl)) : take(get(gv)));
    return [
      set(sl, f64x2.splat(get(slope))),
      set(end, i32.shl(get(count), i32.c(2))),
      forRange(off, i32.c(0), get(end), i32.c(16), [
        set(gv, v128.load(i32.add(get(g), get(off)))),
        set(a, i32.add(get(gx), get(off))),
        set(gxv, v128.load(get(a))),
        v128.store(get(a), bits.select(join(sum(lo, false), sum(hi, false)), join(sum(lo, true), sum(hi, true)), f32x4.gt(v128.load(i32.add(get(x), get(off))), v128.zero()))),
      ]),
    ];
  });

  // Batch norm over planes of `spatial` floats, plane (s, ch) at (s·c + ch)·spatial for s < ns.
  // Per-channel constants are float64, CHANNEL_COEF_BYTES apart (coef + ch·64 + 8·i), splatted.
  // Sums: per channel, float64 terms of the elements of a (and b) summed in four lanes (positions
  // ≡ l mod 4 of every plane, sample after sample) plus a tail, added as ((l0 + l1) + (l2 + l3)) + tail
  // into dst[ch·terms + t] (f64).
  const coefOf = (coef: Local, ch: Local, i: number): Code => f64x2.splat(f64.load(i32.add(get(coef), i32.shl(get(ch), i32.c(6))), 8 * i));
  const channelSums = (name: string, terms: number, term: (a: Code, b: Code, k: readonly Code[]) => Code[]): number =>
    mw.func(name, Array(7).fill('i32'), [], ([a, b, ns, c, spatial, coef, dst], f) => {
      const [ch, s, p, q, e, ev] = f.localsOf('i32', 6);
      const acc = Array.from({ length: terms }, () => f.localsOf('v128', 3));
      const [av, bv, k0, k1] = f.localsOf('v128', 4);
      const add = (lane: number, x: Code, y: Code): Code => term(x, y, [get(k0), get(k1)]).map((t, i) => set(acc[i][lane], f64x2.add(get(acc[i][lane]), t)));
      const lane = (v: Local, l: number): Code => f64x2.extractLane(get(v), l);
      const scalar = (addr: Code): Code => f64x2.splat(f64.promoteF32(f32.load(addr)));
      return forRange(ch, i32.c(0), get(c), i32.c(1), [
        acc.flat().map((l) => set(l, v128.zero())),
        set(k0, coefOf(coef, ch, 0)),
        set(k1, coefOf(coef, ch, 1)),
        forRange(s, i32.c(0), get(ns), i32.c(1), [
          set(q, i32.shl(i32.mul(i32.add(i32.mul(get(s), get(c)), get(ch)), get(spatial)), i32.c(2))),
          set(p, i32.add(get(a), get(q))),
          set(q, i32.add(get(b), get(q))),
          set(e, i32.add(get(p), i32.shl(get(spatial), i32.c(2)))),
          set(ev, i32.add(get(p), i32.shl(i32.and(get(spatial), i32.c(-4)), i32.c(2)))),
          forRange(p, get(p), get(ev), i32.c(16), [set(av, v128.load(get(p))), set(bv, v128.load(get(q))), add(0, lo(get(av)), lo(get(bv))), add(1, hi(get(av)), hi(get(bv))), set(q, i32.add(get(q), i32.c(16)))]),
          forRange(p, get(p), get(e), i32.c(4), [add(2, scalar(get(p)), scalar(get(q))), set(q, i32.add(get(q), i32.c(4)))]),
        ]),
        acc.map(([l01, l23, tail], i) =>
          f64.store(i32.add(get(dst), i32.shl(i32.add(i32.mul(get(ch), i32.c(terms)), i32.c(i)), i32.c(3))), f64.add(f64.add(f64.add(lane(l01, 0), lane(l01, 1)), f64.add(lane(l23, 0), lane(l23, 1))), lane(tail, 0))),
        ),
      ]);
    });
  // Σ a; Σ (a − mean)²; Σ a and Σ (a·(b − mean))·invStd (a = dy, b = x), with mean = coef 0, invStd = coef 1.
  channelSums('bn_sum', 1, (x) => [x]);
  channelSums('bn_sqdev', 1, (x, _y, [mean]) => [f64x2.mul(f64x2.sub(x, mean), f64x2.sub(x, mean))]);
  channelSums('bn_grad_sums', 2, (dy, x, [mean, invStd]) => [dy, f64x2.mul(f64x2.mul(dy, f64x2.sub(x, mean)), invStd)]);

  // Per-channel maps: out = f32(fn(inputs, coefs)) in float64 over every element of each plane.
  const channelMap = (name: string, inputs: number, coefs: number, fn: (xs: Code[], k: Code[]) => Code): number =>
    mw.func(name, Array(inputs + 5).fill('i32'), [], (params, f) => {
      const ins = params.slice(0, inputs);
      const [out, ns, c, spatial, coef] = params.slice(inputs);
      const [s, ch, o, e, ev, d] = f.localsOf('i32', 6);
      const vs = f.localsOf('v128', inputs);
      const ks = f.localsOf('v128', coefs);
      const apply = (take: (v: Code) => Code): Code => fn(vs.map((v) => take(get(v))), ks.map((k) => get(k)));
      return forRange(s, i32.c(0), get(ns), i32.c(1), [
        forRange(ch, i32.c(0), get(c), i32.c(1), [
          ks.map((k, i) => set(k, coefOf(coef, ch, i))),
          set(o, i32.shl(i32.mul(i32.add(i32.mul(get(s), get(c)), get(ch)), get(spatial)), i32.c(2))),
          set(e, i32.add(get(o), i32.shl(get(spatial), i32.c(2)))),
          set(ev, i32.add(get(o), i32.shl(i32.and(get(spatial), i32.c(-4)), i32.c(2)))),
          forRange(o, get(o), get(ev), i32.c(16), [vs.map((v, i) => set(v, v128.load(i32.add(get(ins[i]), get(o))))), v128.store(i32.add(get(out), get(o)), join(apply(lo), apply(hi)))]),
          forRange(o, get(o), get(e), i32.c(4), [
            vs.map((v, i) => set(v, f64x2.splat(f64.promoteF32(f32.load(i32.add(get(ins[i]), get(o))))))),
            set(d, i32.add(get(out), get(o))),
            f32.store(get(d), f64.demoteToF32(f64x2.extractLane(apply((v) => v), 0))),
          ]),
        ]),
      ]);
    });
  // y = (x − mean)·k + shift; coefs mean, k, shift.
  channelMap('bn_apply', 1, 3, ([x], [mean, k, shift]) => f64x2.add(f64x2.mul(f64x2.sub(x, mean), k), shift));
  // gx += k·((dy − mdy) − ((x − mean)·invStd)·mdyx); inputs dy, x, gx; coefs mean, invStd, k, mdy, mdyx.
  channelMap('bn_grad_input', 3, 5, ([dy, x, gx], [mean, invStd, k, mdy, mdyx]) => f64x2.add(gx, f64x2.mul(k, f64x2.sub(f64x2.sub(dy, mdy), f64x2.mul(f64x2.mul(f64x2.sub(x, mean), invStd), mdyx)))));

  // Softmax along the class axis of one sample's logits z [c][inner] (float32), two positions
  // (f64x2 lanes) at a time; inner is even. Per position: the max (the JS loop's `z > max` scan),
  // e_k = exp(z_k − max) kept in ex (f64 [c][inner]), their sum in k order, then
  // prob_k = f32(e_k / sum); max and sum go to mx and sm (f64 [inner]).
  mw.func('softmax_xent', Array(7).fill('i32'), [], ([z, prob, ex, c, inner, mx, sm], f) => {
    const [i, k, a, e, row] = f.localsOf('i32', 5);
    const [m, s, v] = f.localsOf('v128', 3);
    const exp = expF64x2(f);
    const loadZ = (): Code => f64x2.promoteLow(v128.load64Zero(get(a)));
    const next = (): Code => [set(a, i32.add(get(a), get(row))), set(e, i32.add(get(e), i32.shl(get(row), i32.c(1))))];
    return [
      set(row, i32.shl(get(inner), i32.c(2))),
      forRange(i, i32.c(0), get(row), i32.c(8), [
        set(m, f64x2.splat(f64.c(-Infinity))),
        set(a, i32.add(get(z), get(i))),
        forRange(k, i32.c(0), get(c), i32.c(1), [set(v, loadZ()), set(m, bits.select(get(v), get(m), f64x2.gt(get(v), get(m)))), set(a, i32.add(get(a), get(row)))]),
        set(s, v128.zero()),
        set(a, i32.add(get(z), get(i))),
        set(e, i32.add(get(ex), i32.shl(get(i), i32.c(1)))),
        forRange(k, i32.c(0), get(c), i32.c(1), [exp(v, f64x2.sub(loadZ(), get(m))), v128.store(get(e), get(v)), set(s, f64x2.add(get(s), get(v))), next()]),
        v128.store(i32.add(get(mx), i32.shl(get(i), i32.c(1))), get(m)),
        v128.store(i32.add(get(sm), i32.shl(get(i), i32.c(1))), get(s)),
        set(a, i32.add(get(prob), get(i))),
        set(e, i32.add(get(ex), i32.shl(get(i), i32.c(1)))),
        forRange(k, i32.c(0), get(c), i32.c(1), [
          set(v, f64x2.demoteZero(f64x2.div(v128.load(get(e)), get(s)))),
          f32.store(get(a), f32x4.extractLane(get(v), 0)),
          f32.store(get(a), f32x4.extractLane(get(v), 1), 4),
          next(),
        ]),
      ]),
    ];
  });
  // The cross-entropy's logit gradient (the JS loop of ops/loss.ts, the same float64 operations in
  // the same order and one rounding to f32): gz += w·(prob − onehot), four positions at a time, the
  // label comparison widened to a 0.0 / 1.0 per f64 lane.
  const LOW_MASK = [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7];
  const HIGH_MASK = [8, 9, 10, 11, 8, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15];
  mw.func('xent_grad', Array(7).fill('i32'), [], ([prob, w, labels, gz, n, c, inner], f) => {
    const [b, k, o, row, pe, ge, we, le] = f.localsOf('i32', 8);
    const [pv, gv, lv, kv, one] = f.localsOf('v128', 5);
    const half = (take: (v: Code) => Code, mask: readonly number[], wOffset: number): Code =>
      f64x2.add(take(get(gv)), f64x2.mul(v128.load(i32.add(get(we), i32.shl(get(o), i32.c(1))), wOffset), f64x2.sub(take(get(pv)), bits.and(bits.shuffle(get(lv), get(lv), mask), get(one)))));
    return [
      set(one, f64x2.splat(f64.c(1))),
      set(row, i32.shl(get(inner), i32.c(2))),
      set(pe, get(prob)),
      set(ge, get(gz)),
      set(we, get(w)),
      set(le, get(labels)),
      forRange(b, i32.c(0), get(n), i32.c(1), [
        forRange(k, i32.c(0), get(c), i32.c(1), [
          set(kv, i32x4.splat(get(k))),
          forRange(o, i32.c(0), get(row), i32.c(16), [
            set(pv, v128.load(i32.add(get(pe), get(o)))),
            set(gv, v128.load(i32.add(get(ge), get(o)))),
            set(lv, i32x4.eq(v128.load(i32.add(get(le), get(o))), get(kv))),
            v128.store(i32.add(get(ge), get(o)), join(half(lo, LOW_MASK, 0), half(hi, HIGH_MASK, 16))),
          ]),
          set(pe, i32.add(get(pe), get(row))),
          set(ge, i32.add(get(ge), get(row))),
        ]),
        set(we, i32.add(get(we), i32.shl(get(row), i32.c(1)))),
        set(le, i32.add(get(le), get(row))),
      ]),
    ];
  });
  return mw.bytes();
}

/**
 * e^x in both f64x2 lanes for x ≤ 0 (NaN stays NaN; below −708 it returns e^−708, which rounds
 * to 0 in float32): x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor series to r¹³/13!
 * (truncation below 1e-17), times 2^k built in the exponent bits. Within a few units in the last
 * place of float64 of Math.exp. Returns a code generator storing the result in `dst`.
 */
function expF64x2(f: FuncScope): (dst: Local, x: Code) => Code {
  const [x, t, kf, r] = f.localsOf('v128', 4);
  // 1.5·2^52: adding it rounds to an integer, which then sits in the low mantissa bits.
  const SHIFTER = 6755399441055744;
  const splat = (c: number): Code => f64x2.splat(f64.c(c));
  let poly: Code = splat(1 / 6227020800); // 1/13!
  for (let n = 12; n >= 1; n--) {
    let fact = 1;
    for (let j = 2; j <= n; j++) fact *= j;
    poly = f64x2.add(splat(1 / fact), f64x2.mul(get(r), poly));
  }
  poly = f64x2.add(splat(1), f64x2.mul(get(r), poly));
  return (dst, value) => [
    set(x, value),
    set(x, bits.select(splat(-708), get(x), f64x2.gt(splat(-708), get(x)))),
    set(t, f64x2.add(f64x2.mul(get(x), splat(Math.LOG2E)), splat(SHIFTER))),
    set(kf, f64x2.sub(get(t), splat(SHIFTER))),
    set(r, f64x2.sub(f64x2.sub(get(x), f64x2.mul(get(kf), splat(6.93147180369123816490e-1))), f64x2.mul(get(kf), splat(1.90821492927058770002e-10)))),
    // 2^k: the exponent field k + 1023 from the low bits of t.
    set(dst, f64x2.mul(poly, i64x2.shl(i64x2.add(get(t), i32x4.c(1023, 0, 1023, 0)), i32.c(52)))),
  ];
}
