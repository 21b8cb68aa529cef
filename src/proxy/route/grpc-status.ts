/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), by name. */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);

/** A gRPC status name, e.g. `UNAVAILABLE`. */
export type GrpcStatusName = keyof typeof GRPC_STATUS;

const BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(GRPC_STATUS));

/**
 * A retryable gRPC status, as a route's `retry.codes` entry gives it: a name (`UNAVAILABLE`;
 * case and `-` for `_` are forgiven, so `resource-exhausted` works) or a number 1-16.
 * Returns the number, or a message saying what to write instead. OK (0) is refused: a
 * success is never retried.
 */
export function parseGrpcRetryCode(value: string | number): number | string {
  const code = typeof value === 'number' ? value : BY_NAME.get(value.trim().toUpperCase().replace(/-/g, '_'));
  if (code === undefined || !Number.isInteger(code) || code < 0 || code > 16) {
    return `"${value}" is not a gRPC status: use a name such as UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED, or a number 1-16`;
  }
  if (code === 0) return 'OK (0) is a success and is never retried: remove it';
  return code;
}
