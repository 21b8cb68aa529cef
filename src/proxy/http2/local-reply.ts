import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';

/**
 * Replies the sidecar makes itself on an HTTP/2 stream. HTTP: the status, a `weft-error`
 * header with the stable code and a one-line body (as `http1/local-reply.ts`). gRPC
 * (`content-type: application/grpc*`): a trailers-only response, `:status 200` with
 * `grpc-status`, `grpc-message` and `weft-error`, which gRPC clients read as the call's status.
 */

/** gRPC status codes the sidecar produces (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** True for gRPC requests (and gRPC-Web, which reads trailers-only responses the same way). */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return type !== undefined && type.startsWith('application/grpc');
}

/** The gRPC status a sidecar HTTP status stands for (gRPC's HTTP-to-status mapping, with the sidecar's own cases). */
export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
    case 501:
      return GrpcStatus.UNIMPLEMENTED;
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 429:
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 400:
    case 500:
      return GrpcStatus.INTERNAL;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** grpc-message is percent-encoded: printable ASCII but `%` as is, every other byte as %XX (UTF-8). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The trailer fields that carry a sidecar error on a gRPC call. */
export function grpcErrorFields(httpStatus: number, code: string, message: string): OutgoingHttpHeaders {
  return { 'grpc-status': String(grpcStatusOf(httpStatus)), 'grpc-message': encodeGrpcMessage(message), 'weft-error': code };
}

/**
 * Sends a local reply on `stream` (nothing of the response was sent yet). `head`: the
 * request was HEAD (no body). A stream the caller already reset is left alone.
 */
export function sendLocalReply(stream: ServerHttp2Stream, reply: { status: number; code: string; message: string; grpc: boolean; head: boolean; extra?: OutgoingHttpHeaders }): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  try {
    respond(stream, reply);
  } catch {
    stream.close(constants.NGHTTP2_INTERNAL_ERROR); // a header Node refuses (from `extra`)
  }
}

function respond(stream: ServerHttp2Stream, reply: { status: number; code: string; message: string; grpc: boolean; head: boolean; extra?: OutgoingHttpHeaders }): void {
  if (reply.grpc) {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...grpcErrorFields(reply.status, reply.code, reply.message), ...reply.extra }, { endStream: true });
    return;
  }
  const body = `${reply.message}\n`;
  const headers: OutgoingHttpHeaders = {
    ':status': reply.status,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'weft-error': reply.code,
    ...reply.extra,
  };
  if (reply.head) {
    stream.respond(headers, { endStream: true });
    return;
  }
  stream.respond(headers);
  stream.end(body);
}
