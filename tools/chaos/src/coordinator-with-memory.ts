// The coordinator's main, plus one `chaos-memory heapUsed=<bytes> rss=<bytes>` line on stderr every
// 2 s, so the soak run can report the coordinator's heap without touching the app.
setInterval(() => {
  const m = process.memoryUsage();
  process.stderr.write(`chaos-memory heapUsed=${m.heapUsed} rss=${m.rss}\n`);
}, 2000).unref();
// By URL, not by a relative import specifier: the app is a process to run, not a library to depend on.
await import(new URL('../../../apps/coordinator/src/main.ts', import.meta.url).href);
