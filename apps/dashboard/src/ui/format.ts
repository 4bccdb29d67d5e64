// Number, time and size formatting for the views.

/** `1.2 s`, `3 min 20 s`, `2 h 05 min`; `—` for unknown. */
export function duration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s - m * 60)).padStart(2, '0')} s`;
  const hrs = Math.floor(m / 60);
  return `${hrs} h ${String(m - hrs * 60).padStart(2, '0')} min`;
}

/** `just now`, `12 s ago`, `3 min ago` from an ISO time or epoch ms. */
export function ago(time: string | number | undefined | null, now = Date.now()): string {
  if (time === undefined || time === null) return '—';
  const t = typeof time === 'number' ? time : Date.parse(time);
  if (!Number.isFinite(t)) return '—';
  const ms = Math.max(0, now - t);
  if (ms < 2000) return 'just now';
  return `${duration(ms).replace(/ \d+ s$/, '')} ago`;
}

/** Fixed significant digits without exponent noise: 0.0123, 1.23, 123, 12 300. */
export function num(v: number | undefined | null, digits = 3): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US').replace(/,/g, '\u202f');
  if (a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(digits)).toString();
}

/** 0.9876 → `98.8 %`. */
export function pct(v: number | undefined | null, digits = 1): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—';
  return `${(v * 100).toFixed(digits)} %`;
}

/** Bytes as `812 B`, `4.2 KB`, `1.3 MB`. */
export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Local date and time, short. */
export function when(time: string | number | undefined | null): string {
  if (time === undefined || time === null) return '—';
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return '—';
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
