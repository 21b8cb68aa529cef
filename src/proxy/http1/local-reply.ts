import { STATUS_CODES } from 'node:http';

/**
 * A reply the sidecar makes itself instead of the upstream's: the status, a `weft-error`
 * header with a stable code, and a one-line body saying what happened.
 */
export function localReplyBytes(status: number, code: string, message: string, options: { close: boolean; head: boolean; location?: string | undefined }): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n${code === '' ? '' : `weft-error: ${code}\r\n`}${options.location !== undefined ? `location: ${options.location}\r\n` : ''}${options.close ? 'connection: close\r\n' : ''}\r\n` +
    (options.head ? '' : body)
  );
}
