/**
 * Strict parsing of HTTP/1.x message heads (RFC 9112), for a proxy that forwards bytes.
 *
 * The sidecar reads each head itself instead of going through Node's `http` server and an
 * HTTP client: it needs the request line, the headers and the framing, then passes the
 * body bytes through as they are. Anything a lenient parser might read differently from
 * the app behind the sidecar (request smuggling) is refused: bare CR or LF, obs-fold
 * continuation lines, whitespace before the colon, invalid characters in names, values or
 * the request target, Content-Length together with Transfer-Encoding, several or
 * malformed Content-Length values, a transfer coding other than `chunked`, and
 * underscore spellings of the framing headers.
 */

/** Why a head was refused: the status for a local reply and a stable weft-error code. */
export class HeadError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The fields of a head and what the proxy derived from them, in one fixed shape. */
export interface MessageHead {
  /** Header names as sent, values with surrounding whitespace removed, in order. */
  readonly names: string[];
  /** The same names in lower case (looked up by every rule that reads headers). */
  readonly lower: string[];
  readonly values: string[];
  /** HTTP/1.0 (0) or HTTP/1.1 (1). */
  readonly minor: 0 | 1;
  /** Body length from Content-Length, or -1 when there is none. */
  readonly contentLength: number;
  /** Transfer-Encoding: chunked (the only transfer coding accepted). */
  readonly chunked: boolean;
  /** Connection tokens, lower case, or null when there is no Connection header. */
  readonly connection: readonly string[] | null;
  /** The Upgrade header's value, or null. */
  readonly upgrade: string | null;
}

export interface RequestHead extends MessageHead {
  readonly method: string;
  readonly target: string;
}

export interface ResponseHead extends MessageHead {
  readonly status: number;
  readonly reason: string;
}

/** Limits on a head, from the listener's `limits`. */
export interface HeadLimits {
  readonly maxHeaders: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** origin-form, absolute-form, authority-form and `*`: visible ASCII only. */
const TARGET = /^[\x21-\x7e]+$/;
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a request head: `text` is the head up to, not including, the blank line that
 * ends it (latin1, one character per byte).
 */
export function parseRequestHead(text: string, limits: HeadLimits): RequestHead {
  const eol = lineEnd(text, 0);
  const line = text.slice(0, eol);
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) {
    throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'malformed request line (expected "METHOD target HTTP/1.1")');
  }
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'invalid characters in the request method');
  if (!TARGET.test(target)) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'invalid characters in the request target');
  // A request target never carries a fragment (RFC 9112 §3.2); one that does could be read
  // one way by authorization and another by the app.
  if (target.includes('#')) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'a request target cannot contain "#"');
  const minor = httpMinor(version);
  if (minor < 0) throw new HeadError(version.startsWith('HTTP/') ? 505 : 400, 'WEFT_E_HTTP_VERSION', `unsupported protocol version "${printable(version)}"; HTTP/1.1 and HTTP/1.0 are served here`);
  const head = parseFields(text, eol, minor as 0 | 1, limits.maxHeaders, true) as Mutable<RequestHead>;
  head.method = method;
  head.target = target;
  return head;
}

/** Parses a response head (the upstream's), with the same rules; errors become 502s. */
export function parseResponseHead(text: string, limits: HeadLimits): ResponseHead {
  const eol = lineEnd(text, 0);
  const line = text.slice(0, eol);
  // status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]
  const minor = httpMinor(line.slice(0, 8));
  const code = line.slice(9, 12);
  if (minor < 0 || line.charCodeAt(8) !== 0x20 || !/^[1-9]\d\d$/.test(code) || (line.length > 12 && line.charCodeAt(12) !== 0x20)) {
    throw new HeadError(502, 'WEFT_E_UPSTREAM_PROTOCOL', 'the upstream sent a malformed status line');
  }
  const reason = line.slice(13);
  if (!REASON.test(reason)) throw new HeadError(502, 'WEFT_E_UPSTREAM_PROTOCOL', 'invalid characters in the upstream reason phrase');
  const head = parseFields(text, eol, minor as 0 | 1, limits.maxHeaders, false) as Mutable<ResponseHead>;
  head.status = Number(code);
  head.reason = reason;
  return head;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function httpMinor(version: string): number {
  if (version === 'HTTP/1.1') return 1;
  if (version === 'HTTP/1.0') return 0;
  return -1;
}

/** End of the line starting at `from` (index of its CR, or the text's end); a bare LF or CR is refused. */
function lineEnd(text: string, from: number): number {
  const cr = text.indexOf('\r', from);
  const end = cr < 0 ? text.length : cr;
  const lf = text.indexOf('\n', from);
  if (lf >= 0 && lf < end) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'bare LF in the message head (lines end with CRLF)');
  if (cr >= 0 && text.charCodeAt(cr + 1) !== 0x0a) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'bare CR in the message head');
  return end;
}

/** tchar (RFC 9110 §5.6.2) by character code. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

function parseFields(text: string, firstEol: number, minor: 0 | 1, maxHeaders: number, request: boolean): MessageHead {
  const names: string[] = [];
  const lower: string[] = [];
  const values: string[] = [];
  let contentLength = -1;
  let lengthCount = 0;
  let encodings: string | null = null;
  let connection: string[] | null = null;
  let upgrade: string | null = null;
  const n = text.length;
  let pos = firstEol + 2;
  // One pass per line, by character code: the name's characters, the colon, the value's
  // characters and the CRLF are checked as the line is walked.
  while (pos < n) {
    let i = pos;
    let c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09) throw fieldError(request, 'obsolete line folding in a header (a line starts with whitespace)');
    while (c < 128 && TCHAR[c] === 1) c = text.charCodeAt(++i);
    if (c !== 0x3a /* : */ || i === pos) {
      const name = text.slice(pos, i);
      if (c === 0x20 || c === 0x09) throw fieldError(request, `invalid header name "${printable(name)}" (no spaces before the colon, token characters only)`);
      throw fieldError(request, i === pos ? 'a header line has no name' : c === 0x0d || i >= n ? 'a header line has no colon' : `invalid header name "${printable(text.slice(pos, i + 1))}" (token characters only)`);
    }
    const name = text.slice(pos, i);
    let start = i + 1;
    while (start < n && ((c = text.charCodeAt(start)) === 0x20 || c === 0x09)) start++;
    let j = start;
    for (; j < n; j++) {
      c = text.charCodeAt(j);
      if (c < 0x20) {
        if (c === 0x0d) break;
        if (c !== 0x09) throw c === 0x0a ? new HeadError(400, 'WEFT_E_BAD_REQUEST', 'bare LF in the message head (lines end with CRLF)') : fieldError(request, `invalid characters in the value of header "${name}"`);
      } else if (c === 0x7f) {
        throw fieldError(request, `invalid characters in the value of header "${name}"`);
      }
    }
    if (j < n && text.charCodeAt(j + 1) !== 0x0a) throw new HeadError(400, 'WEFT_E_BAD_REQUEST', 'bare CR in the message head');
    let end = j;
    while (end > start && ((c = text.charCodeAt(end - 1)) === 0x20 || c === 0x09)) end--;
    const value = text.slice(start, end);
    if (names.length === maxHeaders) throw new HeadError(request ? 431 : 502, request ? 'WEFT_E_TOO_MANY_HEADERS' : 'WEFT_E_UPSTREAM_PROTOCOL', `more than ${maxHeaders} headers`);
    const low = name.toLowerCase();
    names.push(name);
    lower.push(low);
    values.push(value);
    switch (low) {
      case 'content-length':
        if (!/^\d{1,15}$/.test(value)) throw badFraming(request, `invalid Content-Length "${printable(value)}"`);
        // Identical repeats are tolerated in responses (RFC 9112 §6.3); requests must not repeat it.
        if (lengthCount > 0 && (request || Number(value) !== contentLength)) throw badFraming(request, 'several Content-Length headers');
        contentLength = Number(value);
        lengthCount++;
        break;
      case 'transfer-encoding':
        encodings = encodings === null ? value : `${encodings},${value}`;
        break;
      case 'connection':
        connection ??= [];
        for (const t of value.split(',')) {
          const token = t.trim().toLowerCase();
          if (token !== '') connection.push(token);
        }
        break;
      case 'upgrade':
        upgrade = value;
        break;
      case 'content_length':
      case 'transfer_encoding':
        throw badFraming(request, `header "${name}" is an ambiguous spelling of a framing header`);
    }
    pos = j + 2;
  }
  let chunked = false;
  if (encodings !== null) {
    if (minor === 0) throw badFraming(request, 'Transfer-Encoding in an HTTP/1.0 message');
    if (encodings.trim().toLowerCase() !== 'chunked') {
      throw request
        ? new HeadError(501, 'WEFT_E_TRANSFER_ENCODING', `transfer coding "${printable(encodings)}" is not supported; send the body chunked or with a Content-Length`)
        : fieldError(false, `the upstream used transfer coding "${printable(encodings)}"; only chunked is supported`);
    }
    if (lengthCount > 0) {
      if (request) throw badFraming(request, 'both Transfer-Encoding and Content-Length');
      contentLength = -1; // RFC 9112 §6.3: chunked wins, and the length is not forwarded
    }
    chunked = true;
  }
  return { names, lower, values, minor, contentLength, chunked, connection, upgrade } as MessageHead;
}

/** A malformed header: 400 for a request, 502 for an upstream response. */
function fieldError(request: boolean, message: string): HeadError {
  return new HeadError(request ? 400 : 502, request ? 'WEFT_E_BAD_REQUEST' : 'WEFT_E_UPSTREAM_PROTOCOL', message);
}

/** Framing the app might read differently (request smuggling). */
function badFraming(request: boolean, message: string): HeadError {
  return request ? new HeadError(400, 'WEFT_E_BAD_FRAMING', `request refused: ${message}`) : fieldError(false, message);
}

/** Shortens and escapes untrusted text for an error message. */
function printable(s: string): string {
  const clipped = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  // eslint-disable-next-line no-control-regex
  return clipped.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
