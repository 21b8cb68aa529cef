import type { Socket } from 'node:net';

/**
 * Protocol detection from a connection's first bytes (docs/protocols.md):
 *
 * - `http` listeners serve HTTP/1.1 and HTTP/2. Without ALPN, the HTTP/2 connection
 *   preface decides; a first byte other than `P` is HTTP/1 at once (one byte check on the
 *   first chunk, the HTTP/1 hot path), and only a first chunk starting with `P` (PUT,
 *   POST, PATCH… or the preface) is compared further.
 * - `auto` listeners also carry opaque TCP: the preface is HTTP/2, a known method token
 *   followed by a space is HTTP/1, anything else (a TLS ClientHello, a binary protocol) is
 *   TCP, and silence for AUTO_DETECT_WAIT_MS is TCP (a server-first protocol: SMTP, MySQL).
 */

/**
 * How long an `auto` listener waits for the caller's first bytes before it treats the
 * connection as opaque TCP. Server-first protocols (SMTP, MySQL, FTP) send nothing until
 * the server greets them, so each `auto` hop delays their greeting by this much; declare
 * such listeners `tcp` to avoid it. Partial first bytes wait no longer than this either.
 */
export const AUTO_DETECT_WAIT_MS = 100;

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** What a connection speaks. */
export type DetectedProtocol = 'http1' | 'http2' | 'tcp';

/** Request methods recognised by `auto` detection (RFC 9110, PATCH, WebDAV): the token and a space. */
const METHODS: readonly Buffer[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK'].map((m) =>
  Buffer.from(`${m} `, 'latin1'),
);

/** The longest prefix a decision can need (the preface), so detection buffers at most this. */
export const MAX_DETECT_BYTES = Math.max(H2_PREFACE.length, ...METHODS.map((m) => m.length));

const enum Prefix {
  /** `buf` and the pattern differ. */
  No,
  /** `buf` is shorter than the pattern and a prefix of it: more bytes decide. */
  Partial,
  /** `buf` starts with the whole pattern. */
  Full,
}

function prefix(buf: Buffer, pattern: Buffer): Prefix {
  const n = Math.min(buf.length, pattern.length);
  for (let i = 0; i < n; i++) if (buf[i] !== pattern[i]) return Prefix.No;
  return buf.length >= pattern.length ? Prefix.Full : Prefix.Partial;
}

/**
 * `http` listeners without ALPN: `http2` for the connection preface, else `http1`; null
 * while the bytes so far are a strict prefix of the preface. Any first byte but `P` is
 * HTTP/1 at once.
 */
export function classifyHttp(buf: Buffer): 'http1' | 'http2' | null {
  if (buf.length === 0) return null;
  if (buf[0] !== 0x50) return 'http1';
  const p = prefix(buf, H2_PREFACE);
  return p === Prefix.Full ? 'http2' : p === Prefix.Partial ? null : 'http1';
}

/**
 * `auto` listeners: `http2` for the preface, `http1` for a known method followed by a
 * space, null while the bytes so far could still become either, else `tcp` (a TLS
 * ClientHello `0x16 0x03`, a binary or unknown protocol).
 */
export function classifyAuto(buf: Buffer): DetectedProtocol | null {
  if (buf.length === 0) return null;
  const first = buf[0]!;
  if (first < 0x41 || first > 0x5a) return 'tcp'; // not an upper-case letter: no method, no preface
  let partial = false;
  const p = prefix(buf, H2_PREFACE);
  if (p === Prefix.Full) return 'http2';
  if (p === Prefix.Partial) partial = true;
  for (const method of METHODS) {
    const m = prefix(buf, method);
    if (m === Prefix.Full) return 'http1';
    if (m === Prefix.Partial) partial = true;
  }
  return partial ? null : 'tcp';
}

/**
 * Reads a connection's first bytes until they decide its protocol, then pauses the socket,
 * puts the bytes back (`unshift`) and calls `decided` once. `auto` mode decides `tcp`
 * after AUTO_DETECT_WAIT_MS without a decision; `http` mode has no timer of its own (the
 * listener's sweep calls `expire` after the header timeout). A caller that ends its side
 * or fails before a decision is disconnected, and `decided` is not called.
 */
export class ProtocolSniffer {
  /** When the sniffer started (performance.now()), for the listener's sweep. */
  readonly since = performance.now();
  readonly mode: 'http' | 'auto';
  readonly #socket: Socket;
  readonly #decided: (protocol: DetectedProtocol) => void;
  #buffered: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;
  #done = false;

  constructor(socket: Socket, mode: 'http' | 'auto', decided: (protocol: DetectedProtocol) => void, waitMs = AUTO_DETECT_WAIT_MS) {
    this.#socket = socket;
    this.mode = mode;
    this.#decided = decided;
    socket.on('data', this.#onData);
    socket.once('end', this.#onGone);
    socket.once('close', this.#onGone);
    if (mode === 'auto') this.#timer = setTimeout(() => this.#finish('tcp'), waitMs);
    // A socket handed over paused (permissive sniffing unshifted its first bytes) flows now.
    socket.resume();
  }

  /** True once the protocol is decided or the caller went away. */
  get done(): boolean {
    return this.#done;
  }

  /** Decides now (e.g. past a deadline of the caller's). */
  expire(protocol: DetectedProtocol): void {
    this.#finish(protocol);
  }

  /** Stops detecting without a decision (the listener answers the silent caller itself); returns the socket. */
  abandon(): Socket {
    this.#cleanup();
    return this.#socket;
  }

  readonly #onData = (chunk: Buffer): void => {
    const buf = this.#buffered === null ? chunk : Buffer.concat([this.#buffered, chunk]);
    this.#buffered = buf;
    const protocol = this.mode === 'http' ? classifyHttp(buf) : classifyAuto(buf);
    // A null decision means buf is a strict prefix of a pattern: never more than MAX_DETECT_BYTES.
    if (protocol !== null) this.#finish(protocol);
  };

  readonly #onGone = (): void => {
    if (this.#done) return;
    this.#cleanup();
    this.#socket.destroy();
  };

  #finish(protocol: DetectedProtocol): void {
    if (this.#done) return;
    this.#cleanup();
    const socket = this.#socket;
    if (socket.destroyed) return;
    socket.pause();
    if (this.#buffered !== null) socket.unshift(this.#buffered);
    this.#buffered = null;
    this.#decided(protocol);
  }

  #cleanup(): void {
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onGone);
    socket.removeListener('close', this.#onGone);
  }
}
