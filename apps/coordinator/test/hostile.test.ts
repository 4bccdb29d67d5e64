// The hostile-input catalogue (issue 7): one test per kind of bad input, each refused at the door
// with an error naming what was wrong, nothing enqueued, nothing stored lost.
//
//   job specs      zero/negative sizes, NaN/Infinity learning rates (as strings and as 1e999),
//                  __proto__ and constructor keys, deep nesting, huge bodies, wrong content types
//   checkpoints    names with ../ (encoded every way), tampered or truncated files over the API
//   queue messages truncated msgpack, wrong tensor lengths, extension types, gigabyte lengths
//                  (refused before any allocation: the heap and ArrayBuffers do not grow)
//
// More of the catalogue lives next to the code it checks: http.test.ts (field-by-field spec
// validation, 413, 415, __proto__), http-sse.test.ts (raw-socket traversal), libs/queue/test/
// codec.test.ts, libs/data/test/idx.test.ts and idx-pair.test.ts (lying IDX headers),
// libs/cnn/test/serialize.test.ts, libs/engine/test/checkpoint.test.ts, tools/cli/test/hostile.test.ts.
// The fuzz tests (fuzz-decoders.test.ts, fuzz-http.test.ts) throw random input at all of it.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_HEADER_BYTES, decodeCheckpoint, jobPaths } from '@stride/engine';
import { decodeGradient, decodeMessage, decodeParams, decodeShardInput, encodeGradient, encodeMessage, encodeShardInput, MessageError } from '@stride/queue';
import { validCheckpointBytes } from './fuzz-helpers.ts';
import { SPEC, makeStack, type Stack } from './http-helpers.ts';

let stack: Stack;
let base: string;
beforeAll(async () => {
  stack = await makeStack('hostile');
  await stack.app.listen({ host: '127.0.0.1', port: 0 });
  const address = stack.app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  await stack?.close();
});

/** POSTs `payload` as `contentType` (null: no Content-Type header at all). */
const post = (payload: string, contentType: string | null = 'application/json', url = '/api/jobs') =>
  stack.app.inject({ method: 'POST', url, headers: contentType === null ? {} : { 'content-type': contentType }, payload });

async function jobCount(): Promise<number> {
  return (await stack.app.inject({ url: '/api/jobs' })).json().jobs.length;
}

/** Sends raw bytes over a socket and returns what came back before the server closed or `ms` passed. */
function raw(request: string | Buffer, ms = 5_000): Promise<{ status: number; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      // One full response is enough (the server may keep the socket open).
      const head = text.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
      if (head >= 0 && Number.isFinite(length) && text.length >= head + 4 + length) done();
    });
    socket.on('end', done);
    socket.on('error', (err) => (text ? done() : reject(err)));
    socket.write(request);
  });
}

describe('job specs', () => {
  const model = (layers: unknown[], input: unknown = [1, 28, 28]) => ({ model: { input, layers }, dataset: 'mnist', steps: 1, batchSize: 8, shards: 2 });
  const conv = (over: Record<string, unknown>) => model([{ type: 'conv2d', outChannels: 4, kernelSize: 3, ...over }, { type: 'flatten' }, { type: 'linear', outFeatures: 10 }]);
  it.each([
    ['steps 0', { ...SPEC, steps: 0 }, 'steps'],
    ['steps -5', { ...SPEC, steps: -5 }, 'steps'],
    ['epochs 0', { model: 'lenet5', dataset: 'mnist', epochs: 0 }, 'epochs'],
    ['batchSize -8', { ...SPEC, batchSize: -8 }, 'batchSize'],
    ['shards -1', { ...SPEC, shards: -1 }, 'shards'],
    ['evalEvery 0', { ...SPEC, evalEvery: 0 }, 'evalEvery'],
    ['evalShards 0', { ...SPEC, evalShards: 0 }, 'evalShards'],
    ['evalSamples -1', { ...SPEC, evalSamples: -1 }, 'evalSamples'],
    ['checkpointEvery 0', { ...SPEC, checkpointEvery: 0 }, 'checkpointEvery'],
    ['keepCheckpoints 0', { ...SPEC, keepCheckpoints: 0 }, 'keepCheckpoints'],
    ['model input with a 0 side', model([{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }], [1, 0, 28]), 'model.input'],
    ['model input with a negative channel count', model([{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }], [-1, 28, 28]), 'model.input'],
    ['conv with 0 filters', conv({ outChannels: 0 }), 'model.layers[0].outChannels'],
    ['conv with a negative kernel', conv({ kernelSize: -3 }), 'model.layers[0].kernelSize'],
    ['conv with stride 0', conv({ stride: 0 }), 'model.layers[0].stride'],
    ['conv with negative padding', conv({ padding: -1 }), 'model.layers[0].padding'],
    ['linear with 0 outputs', model([{ type: 'flatten' }, { type: 'linear', outFeatures: 0 }]), 'model.layers[1].outFeatures'],
    ['a kernel larger than its input', conv({ kernelSize: 29 }), 'model.layers[0]'],
    ['2^40 images per batch', { ...SPEC, batchSize: 2 ** 40 }, 'batchSize'],
    ['2^60 steps', { ...SPEC, steps: 2 ** 60 }, 'steps'],
  ])('%s: 400 naming the field, nothing enqueued', async (_title, body, field) => {
    const before = await jobCount();
    const r = await post(JSON.stringify(body));
    expect(r.statusCode, r.body).toBe(400);
    const { error } = r.json();
    expect(error.code).toBe('invalid_job_spec');
    expect(error.field === field || error.field?.startsWith(`${field}`), `field ${error.field}, expected ${field}`).toBe(true);
    expect(error.message).toMatch(/\S+: /);
    expect(await jobCount()).toBe(before);
  });

  // JSON has no NaN: it arrives as a string, or as a number literal that overflows to ±Infinity.
  it.each([
    ['"NaN"', '"NaN"'],
    ['"Infinity"', '"Infinity"'],
    ['"1e999" (a string)', '"1e999"'],
    ['1e999 (parses to Infinity)', '1e999'],
    ['-1e999 (parses to -Infinity)', '-1e999'],
    ['1e-400 (parses to 0)', '1e-400'],
    ['null', 'null'],
    ['"0.01" (a number in a string)', '"0.01"'],
    ['[0.01]', '[0.01]'],
  ])('learning rate %s: 400 on optimizer.lr', async (_title, literal) => {
    const before = await jobCount();
    const r = await post(`{"model":"lenet5","dataset":"mnist","steps":1,"optimizer":{"type":"adam","lr":${literal}}}`);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'invalid_job_spec', field: 'optimizer.lr', message: expect.stringMatching(/^optimizer\.lr: must be a finite number > 0/) });
    expect(await jobCount()).toBe(before);
  });

  it.each([
    ['momentum', '{"type":"sgd","lr":0.1,"momentum":1e999}', 'optimizer.momentum'],
    ['betas', '{"type":"adam","lr":0.1,"betas":["NaN",0.999]}', 'optimizer.betas'],
    ['eps', '{"type":"adam","lr":0.1,"eps":-1e999}', 'optimizer.eps'],
    ['weightDecay', '{"type":"adamw","lr":0.1,"weightDecay":"Infinity"}', 'optimizer.weightDecay'],
  ])('non-finite %s: 400 naming it', async (_title, optimizer, field) => {
    const r = await post(`{"model":"lenet5","dataset":"mnist","steps":1,"optimizer":${optimizer}}`);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().error.field?.startsWith(field), r.body).toBe(true);
  });

  it.each([
    ['__proto__ written as a JSON escape', '{"model":"lenet5","dataset":"mnist","\\u005f_proto__":{"polluted":true}}', 'forbidden_key', '__proto__'],
    ['constructor.prototype inside a layer', '{"model":{"input":[1,28,28],"layers":[{"type":"flatten","constructor":{"prototype":{"polluted":true}}}]},"dataset":"mnist"}', 'forbidden_key', 'model.layers[0].constructor.prototype'],
    ['__proto__ deep in the optimizer', '{"model":"lenet5","dataset":"mnist","optimizer":{"type":"adam","lr":0.1,"betas":[0.9,{"__proto__":{"polluted":true}}]}}', 'forbidden_key', 'optimizer.betas[1].__proto__'],
    ['a plain constructor key', '{"model":"lenet5","dataset":"mnist","constructor":{"name":"x"}}', 'invalid_job_spec', 'constructor'],
  ])('%s: 400 naming the key, no prototype touched', async (_title, body, code, field) => {
    const before = await jobCount();
    const r = await post(body);
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().error).toMatchObject({ code, field });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await jobCount()).toBe(before);
  });

  it('prototype keys in the query string pollute nothing', async () => {
    const r = await stack.app.inject({ url: '/api/jobs?__proto__[polluted]=1&constructor[prototype][polluted]=2&__proto__.polluted=3' });
    expect(r.statusCode).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a job name with terminal escapes or a bidi override: 400 (names reach terminals and pages)', async () => {
    for (const name of ['\u001b[2J\u001b[31mowned', 'invoice\u202egnp.exe', 'tab\tname']) {
      const r = await post(JSON.stringify({ ...SPEC, name }));
      expect(r.statusCode, JSON.stringify(name)).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'invalid_job_spec', field: 'name', message: expect.stringMatching(/control or bidirectional-override characters, found U\+/) });
    }
    expect((await post(JSON.stringify({ ...SPEC, name: 'Ünïcödé ✓ 数字' }))).statusCode).toBe(201);
  });
});

describe('request bodies', () => {
  it('nesting 400 000 levels deep (800 kB, under the size limit): 400 too_deep, not a stack overflow', async () => {
    for (const body of ['{"model":' + '['.repeat(400_000) + ']'.repeat(400_000) + '}', '{"model":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}']) {
      const r = await post(body);
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toEqual({ code: 'too_deep', message: 'request body nests arrays and objects deeper than 64 levels' });
    }
    // Brackets inside strings are text, not nesting.
    const r = await post(JSON.stringify({ ...SPEC, name: '['.repeat(150) }));
    expect(r.statusCode).toBe(201);
  });

  it('a Content-Length of 10 GB is refused at once with a 413, before any body arrives', async () => {
    const r = await raw('POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n{"model"');
    expect(r.status).toBe(413);
    // Only 8 of the 10 GB were ever sent: the answer came before the body.
    expect(JSON.parse(r.body).error.code).toBe('body_too_large');
  });

  it('a chunked body that grows past the limit is cut off with a 413', async () => {
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    const parts = [Buffer.from('POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')];
    for (let i = 0; i < 6; i++) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
    parts.push(Buffer.from('0\r\n\r\n'));
    const before = await jobCount();
    const r = await raw(Buffer.concat(parts));
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).error.code).toBe('body_too_large');
    expect(await jobCount()).toBe(before);
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['a form', 'application/x-www-form-urlencoded'],
    ['multipart', 'multipart/form-data; boundary=xyz'],
    ['application/jsonx', 'application/jsonx'],
    ['application/json-patch+json', 'application/json-patch+json'],
    ['no Content-Type at all', null],
    ['JSON declared as UTF-16', 'application/json; charset=utf-16'],
    ['JSON declared as Latin-1', 'application/json; charset="iso-8859-1"'],
  ])('a body sent as %s: 415 in the JSON error shape', async (_title, contentType) => {
    const before = await jobCount();
    const r = await post(JSON.stringify(SPEC), contentType);
    expect(r.statusCode).toBe(415);
    expect(r.json().error.code).toBe('unsupported_media_type');
    expect(r.json().error.message).toMatch(/not supported/);
    expect(await jobCount()).toBe(before);
  });

  it('JSON with an explicit UTF-8 charset or an upper-case type is accepted', async () => {
    expect((await post(JSON.stringify(SPEC), 'application/json; charset=UTF-8')).statusCode).toBe(201);
    expect((await post(JSON.stringify(SPEC), 'Application/JSON')).statusCode).toBe(201);
  });

  it('a repeated query parameter (an array) is a 400, not a crash', async () => {
    for (const url of ['/api/events?types=step&types=eval', '/api/events?job=a&job=b']) {
      const r = await stack.app.inject({ url });
      expect(r.statusCode, url).toBe(400);
      expect(r.json().error.code).toBe('invalid_request');
    }
  });

  it('HEAD /api/events answers with the headers at once and holds no stream open (found by the fuzz)', async () => {
    const r = await fetch(`${base}/api/events?job=x`, { method: 'HEAD', signal: AbortSignal.timeout(4_000) });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^stride_sse_clients 0$/m);
  });

  it('a malformed percent-encoding or an overlong path segment gets the JSON error shape', async () => {
    const bad = await raw('GET /api/jobs/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe('invalid_url');
    const long = await stack.app.inject({ url: `/api/jobs/${'a'.repeat(300)}` });
    expect(long.statusCode).toBe(414);
    expect(long.json().error.code).toBe('url_too_long');
  });
});

describe('checkpoints over the API', () => {
  let id: string;
  let dir: string;
  let good: Uint8Array;
  beforeAll(async () => {
    id = (await post(JSON.stringify(SPEC))).json().id;
    dir = jobPaths(stack.dataDir, id).checkpoints;
    await mkdir(dir, { recursive: true });
    good = validCheckpointBytes(id, 1);
    await writeFile(join(dir, 'step-00000001.ckpt'), good);
    await writeFile(join(jobPaths(stack.dataDir, id).dir, 'secret.ckpt'), 'TOP-SECRET-BYTES');
  });

  it('a valid checkpoint downloads byte for byte', async () => {
    const r = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/step-00000001.ckpt` });
    expect(r.statusCode).toBe(200);
    expect(Buffer.compare(r.rawPayload, Buffer.from(good))).toBe(0);
  });

  it.each([
    ['one payload bit flipped', (b: Uint8Array) => ((b[b.length - 5] ^= 0x01), b), /checksum mismatch/],
    ['the stored checksum rewritten', (b: Uint8Array) => (b.fill(0xab, 16, 48), b), /checksum mismatch: header says sha256 abab/],
    ['the file cut short', (b: Uint8Array) => b.subarray(0, b.length - 100), /checksum mismatch/],
    ['the header alone', (b: Uint8Array) => b.subarray(0, CHECKPOINT_HEADER_BYTES - 1), /truncated: 47 bytes/],
    ['another file format', (b: Uint8Array) => (b.set(new TextEncoder().encode('NOTACKPT')), b), /not a Stride checkpoint/],
  ])('a tampered checkpoint (%s) is refused with a 409, never served', async (_title, tamper, message) => {
    const name = 'step-00000002.ckpt';
    await writeFile(join(dir, name), tamper(good.slice()));
    const r = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/${name}` });
    expect(r.statusCode).toBe(409);
    expect(r.json().error.code).toBe('checkpoint_corrupt');
    expect(r.json().error.message).toMatch(message);
    expect(r.json().error.message).toContain(`checkpoint "${name}" of job ${id}`);
    // The good one is untouched and still served.
    expect((await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/step-00000001.ckpt` })).statusCode).toBe(200);
  });

  it.each([
    '..%2Fsecret.ckpt',
    '%2E%2E%2Fsecret.ckpt',
    '%252e%252e%252fsecret.ckpt',
    '..%5Csecret.ckpt',
    '%C0%AE%C0%AE%2Fsecret.ckpt',
    '%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.ckpt',
    'step-00000001.ckpt%2F..%2F..%2Fsecret.ckpt',
    'step-00000001.ckpt%00.png',
  ])('checkpoint name %s: 400 (or a 404 for a name that decodes to nothing known), never a file', async (name) => {
    const r = await raw(`GET /api/jobs/${id}/checkpoints/${name} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect([400, 404]).toContain(r.status);
    expect(r.body).not.toContain('TOP-SECRET-BYTES');
    expect(JSON.parse(r.body).error.code).toMatch(/^(invalid_checkpoint_name|invalid_url|not_found)$/);
  });

  it.each([
    ['elapsedMs as a string', { elapsedMs: '12' }, /meta\.elapsedMs must be a finite number >= 0, got "12"/],
    ['a negative step', { step: -1 }, /meta\.step must be an integer >= 0/],
    ['a spec with NaN as its learning rate', { spec: { model: 'lenet5', dataset: 'mnist', optimizer: { type: 'sgd', lr: 'NaN' } } }, /meta\.spec is not a valid job spec: optimizer\.lr/],
  ])('a checkpoint with a valid checksum but %s is refused by the decoder', (_title, meta, message) => {
    expect(() => decodeCheckpoint(validCheckpointBytes('job-x', 1, meta), 'x.ckpt')).toThrow(message);
  });

  it('a job id with ../ is a 400 before any path is built', async () => {
    const r = await raw(`GET /api/jobs/..%2F..%2F${id}/checkpoints HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error.code).toBe('invalid_job_id');
  });
});

describe('queue messages', () => {
  const expected = { gradientLength: 24, bufferLength: 0 };
  const identity = { jobId: 'job-1', step: 7, shard: 2, paramsVersion: 7, paramsToken: 'a1b2c3d4e5f6', count: 4 };
  const gradient = encodeGradient({ ...identity, gradient: new Float32Array(24) });

  /** Runs `fn`, which must throw a MessageError; returns it with the heap and ArrayBuffer growth it caused. */
  function refused(fn: () => unknown): { err: MessageError; heapMb: number; buffersMb: number } {
    const before = process.memoryUsage();
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    const after = process.memoryUsage();
    expect(caught).toBeInstanceOf(MessageError);
    return { err: caught as MessageError, heapMb: (after.heapUsed - before.heapUsed) / 2 ** 20, buffersMb: (after.arrayBuffers - before.arrayBuffers) / 2 ** 20 };
  }

  it('truncated msgpack, at every length, is a MessageError', () => {
    for (let n = 0; n < gradient.length; n++) {
      const { err } = refused(() => decodeGradient(gradient.subarray(0, n), expected));
      expect(err.field.startsWith('Gradient'), `${n} bytes: ${err.message}`).toBe(true);
    }
  });

  it('wrong tensor lengths are refused naming the field', () => {
    const short = encodeGradient({ ...identity, gradient: new Float32Array(23) });
    expect(refused(() => decodeGradient(short, expected)).err.message).toBe('Gradient.gradient: expected 24 values, got 23');
    const images = encodeShardInput({ jobId: 'job-1', kind: 'train', step: 7, shard: 2, count: 4, images: new Uint8Array(4 * 9 - 1), labels: new Uint8Array(4) });
    expect(refused(() => decodeShardInput(images, { jobId: 'job-1', kind: 'train', step: 7, shard: 2, count: 4, sampleBytes: 9 })).err.message).toBe('ShardInput.images: expected 36 bytes, got 35');
    // A Float32Array where bytes are due, and bytes where floats are due.
    const swapped = encodeGradient({ ...identity, gradient: new Uint8Array(96) as unknown as Float32Array });
    expect(refused(() => decodeGradient(swapped, expected)).err.message).toMatch(/Gradient.gradient: expected a Float32Array, got Uint8Array/);
  });

  it.each([
    ['a timestamp (ext -1)', [0xd6, 0xff, 0, 0, 0, 1], /unexpected Date/],
    ['a user extension (ext 5)', [0xd4, 0x05, 0x00], /Unknown extension 5/],
    ['a structured-clone reference (ext 0x70)', [0xd4, 0x70, 0x00], /Structured clone extension is disabled/],
    ['a Float64Array', [...encodeMessage(new Float64Array([1, 2]))], /unexpected Float64Array/],
    ['a BigInt64Array', [...encodeMessage(new BigInt64Array([1n]))], /unexpected BigInt64Array/],
    ['an Int32Array inside a gradient message', [...encodeMessage({ gradient: new Int32Array(24) })], /Msg\.gradient: unexpected Int32Array/],
    ['an unknown ext type 0x64', [0xc7, 0x08, 0x64, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f], /Unknown extension/],
    ['a bigint (ext 0x42)', [0xc7, 0x02, 0x42, 1, 2], /unexpected bigint/],
  ])('an unexpected extension type, %s, is refused', (_title, bytes, message) => {
    expect(refused(() => decodeMessage(Uint8Array.from(bytes), 'Msg', 1 << 20)).err.message).toMatch(message);
  });

  it.each([
    ['bin32 of 4 GiB', [0xc6, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3]],
    ['str32 of 4 GiB', [0xdb, 0xff, 0xff, 0xff, 0xf0, 0x41]],
    ['array32 of 4 G elements', [0xdd, 0xff, 0xff, 0xff, 0xff, 1]],
    ['map32 of 4 G entries', [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 1]],
    ['a Float32Array (ext32) of 2 GiB', [0xc9, 0x7f, 0xff, 0xff, 0xf0, 0x66, 0, 0, 0, 0]],
  ])('a declared length of gigabytes (%s) is refused before allocation', (_title, bytes) => {
    // Inside a gradient message, where a real gradient would be.
    const head = [...Buffer.from(encodeGradient({ ...identity, gradient: new Float32Array(0) }))];
    // Replace the (last) field's value: the empty gradient ext is the message's tail.
    const forged = Uint8Array.from([...head.slice(0, head.length - 3), ...bytes]);
    const r = refused(() => decodeGradient(forged, expected));
    expect(r.err.field).toBe('Gradient');
    expect(r.err.message).toMatch(/not a valid message \(Unexpected end of MessagePack data\)/);
    expect(r.buffersMb).toBeLessThan(1);
    expect(r.heapMb).toBeLessThan(8);
  });

  it('a message far larger than the expected tensor is refused by its size, before decoding', () => {
    const big = encodeGradient({ ...identity, gradient: new Float32Array(2 ** 20) });
    const r = refused(() => decodeGradient(big, expected));
    expect(r.err.message).toBe(`Gradient: message of ${big.length} bytes exceeds the limit of ${24 * 4 + 64 * 1024} bytes`);
    const params = refused(() => decodeParams(big, { jobId: 'job-1', version: 7, stateLength: 10 }));
    expect(params.err.message).toMatch(/^Params: message of \d+ bytes exceeds the limit/);
  });
});

describe('the server after all of it', () => {
  it('still answers, with the jobs it accepted intact', async () => {
    const r = await stack.app.inject({ url: '/api/jobs' });
    expect(r.statusCode).toBe(200);
    const stored = await readFile(join(stack.dataDir, 'jobs'), { encoding: 'utf8' }).catch(() => undefined);
    expect(stored).toBeUndefined(); // a directory, not a file someone wrote through a traversal
    expect(r.json().jobs.length).toBeGreaterThanOrEqual(3);
    expect((await stack.app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});
