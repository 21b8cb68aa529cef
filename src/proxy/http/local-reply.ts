import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';

/**
 * A reply the sidecar makes itself instead of the upstream's: the status, a `weft-error`
 * header with a stable code, and a one-line body saying what happened. Never throws; if
 * the response already started, the connection is closed instead.
 */
export function localReply(res: ServerResponse, status: number, code: string, message: string, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'weft-error': code,
  };
  if (close) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

/** The same for a raw socket (upgrade requests, which have no ServerResponse). */
export function localReplyRaw(socket: Duplex, status: number, code: string, message: string): void {
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nweft-error: ${code}\r\nconnection: close\r\n\r\n${body}`,
  );
}
