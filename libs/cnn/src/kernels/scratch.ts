// Grow-only scratch buffers reused across kernel calls (im2col columns).
// Kernels are synchronous and JS is single-threaded per worker, so one buffer per slot is safe
// as long as no two kernels that are live at the same time share a slot.

/** im2col output (conv forward and backward-weight). */
export const SLOT_COL = 0;
/** Column gradient before col2im (conv backward-input). */
export const SLOT_DCOL = 1;

const buffers: Float32Array[] = [];

/** A buffer of at least `size` floats for `slot`; contents are garbage. */
export function scratch(slot: number, size: number): Float32Array {
  let buf = buffers[slot];
  if (buf === undefined || buf.length < size) {
    // Grow geometrically so a slowly growing size does not reallocate every call.
    buf = new Float32Array(Math.max(size, Math.ceil((buf?.length ?? 0) * 1.5)));
    buffers[slot] = buf;
  }
  return buf;
}
