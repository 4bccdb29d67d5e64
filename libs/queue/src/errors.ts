// Named error classes of the BullMQ transport. Matched by `name` as well as `instanceof`: they
// cross process boundaries as BullMQ `failedReason` strings and thread boundaries as plain objects.

/**
 * A message read from Redis (job data, return value, binary blob) is not what its schema says.
 * `field` names the offending field as a path (`ShardInput.images`, `ShardJobData.step`).
 */
export class MessageError extends Error {
  override readonly name = 'MessageError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * A shard job belongs to a publication of its parameter version that has been replaced (the
 * coordinator restarted and published the version again): its result could not be accepted, so
 * it is not computed. The coordinator enqueues the shard again for the current publication.
 */
export class StaleJobError extends Error {
  override readonly name = 'StaleJobError';
}

/**
 * A blob a shard needs is gone from Redis (expired, released, or never published). The shard
 * cannot run until the coordinator publishes it again; `key` names the Redis key.
 */
export class MissingBlobError extends Error {
  override readonly name = 'MissingBlobError';
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${message} (key ${key})`);
  }
}
