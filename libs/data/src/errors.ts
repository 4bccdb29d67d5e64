// Errors raised while reading or preparing datasets.

/**
 * A dataset file is missing, malformed or inconsistent, or a sampling argument is out of range.
 * `source` names the file (or `<bytes>` for in-memory input); the message says what is wrong.
 * Matched by `name` as well as `instanceof` where errors cross threads.
 */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  readonly source: string;

  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super(`${source}: ${message}`, options);
    this.source = source;
  }
}
