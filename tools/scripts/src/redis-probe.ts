// Is a Redis server answering at a URL? Speaks just enough RESP (AUTH, PING) over a raw socket,
// so the start script needs no client library and never hangs on a reconnect loop.
import { connect } from 'node:net';

export interface RedisAddress {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Parses `redis://[user[:password]@]host[:port][/db]`. Throws naming the URL when it is not one. */
export function parseRedisUrl(url: string): RedisAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`REDIS_URL ${JSON.stringify(url)} is not a URL (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:') throw new Error(`REDIS_URL ${JSON.stringify(url)}: only redis:// URLs are supported by the start script, got ${u.protocol}`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = u.port ? Number(u.port) : 6379;
  return {
    host,
    port,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

/** Encodes a command as a RESP array of bulk strings. */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/**
 * Sends (AUTH and) PING; ok when the server answers `+PONG`. Never throws; gives up after
 * `timeoutMs`.
 */
export function probeRedis(address: RedisAddress, timeoutMs = 1_000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: address.host, port: address.port });
    let settled = false;
    let received = '';
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      const auth = address.password === undefined ? '' : address.username ? resp('AUTH', address.username, address.password) : resp('AUTH', address.password);
      socket.write(auth + resp('PING'));
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
      const lines = received.split('\r\n');
      for (const line of lines.slice(0, -1)) {
        if (line === '+PONG') return finish({ ok: true });
        if (line.startsWith('-')) return finish({ ok: false, reason: `Redis answered ${line.slice(1)}` });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: err.code ?? err.message }));
    socket.on('close', () => finish({ ok: false, reason: 'connection closed before PONG' }));
  });
}

/** Polls until Redis answers or `timeoutMs` passes; returns the last probe result. */
export async function waitForRedis(address: RedisAddress, timeoutMs: number, intervalMs = 100): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await probeRedis(address, Math.min(1_000, timeoutMs));
    if (r.ok || Date.now() >= deadline) return r;
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}
