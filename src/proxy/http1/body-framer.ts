import { HeadError } from './head.js';

/**
 * Finds where a message body ends in a byte stream, without copying or decoding it, so the
 * proxy can pass the body bytes through unchanged (chunk framing and trailers included).
 *
 * - `length`: Content-Length bytes.
 * - `chunked`: RFC 9112 §7.1 chunked coding, validated strictly as it passes (hex sizes of
 *   at most 15 digits and no whitespace after them, CRLF line ends, no control characters in
 *   extensions or trailers, trailer lines with a name and a colon and no folding, a bounded
 *   trailer section), so that the proxy and the app agree on where it ends.
 * - `close`: everything until the connection closes (responses without framing).
 * - `none`: no body.
 */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

const enum S {
  Size,
  SizeExt,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  LastLf,
  Done,
}

/** 13 hex digits: sizes stay below 2^52, exact in a JS number. */
const MAX_SIZE_DIGITS = 13;

/** Where a chunk extension (`;name[=token|"quoted"]`, no whitespace, as llhttp reads it) is. */
const enum X {
  Name,
  NameMore,
  ValueStart,
  Token,
  Quoted,
  Escape,
  AfterQuoted,
}

/** tchar (RFC 9110 §5.6.2) by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

export class BodyFramer {
  #framing: Framing = 'none';
  #remaining = 0;
  #state = S.Done;
  #digits = 0;
  #ext = X.Name;
  #trailerBytes = 0;
  /** The trailer line being read has had its colon. */
  #colon = false;
  #maxTrailerBytes = 0;
  #request = true;

  /** Starts a new message body. */
  reset(framing: Framing, contentLength: number, maxTrailerBytes: number, request: boolean): void {
    this.#framing = framing;
    this.#request = request;
    this.#maxTrailerBytes = maxTrailerBytes;
    this.#trailerBytes = 0;
    this.#digits = 0;
    this.#remaining = framing === 'length' ? contentLength : 0;
    this.#state = framing === 'chunked' ? S.Size : framing === 'close' ? S.Data : S.Done;
    if (framing === 'length' && contentLength === 0) this.#state = S.Done;
    else if (framing === 'length') this.#state = S.Data;
  }

  get framing(): Framing {
    return this.#framing;
  }

  /** True once the whole body has been seen (never for `close`: the end is the close). */
  get done(): boolean {
    return this.#state === S.Done;
  }

  /**
   * Consumes body bytes from `buf[start..]` and returns how many belong to this body (the
   * rest is the next message). Throws a HeadError on malformed chunked framing.
   */
  feed(buf: Uint8Array, start: number): number {
    const end = buf.length;
    if (this.#framing === 'close') return end - start;
    if (this.#framing === 'length') {
      const n = Math.min(this.#remaining, end - start);
      this.#remaining -= n;
      if (this.#remaining === 0) this.#state = S.Done;
      return n;
    }
    if (this.#framing === 'none') return 0;
    let i = start;
    while (i < end && this.#state !== S.Done) {
      switch (this.#state) {
        case S.Data: {
          const n = Math.min(this.#remaining, end - i);
          this.#remaining -= n;
          i += n;
          if (this.#remaining === 0) this.#state = S.DataCr;
          break;
        }
        case S.Size: {
          const c = buf[i]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) throw this.#fail('chunk size too large');
            this.#remaining = this.#remaining * 16 + v;
          } else if (this.#digits === 0) {
            throw this.#fail('chunk size missing');
          } else if (c === 0x3b /* ; */) {
            // No whitespace after the size: "1 2" could be read as 0x12 by a lenient parser,
            // and llhttp refuses even the BWS before ";" that RFC 9112 allows.
            this.#state = S.SizeExt;
            this.#ext = X.Name;
          } else if (c === 0x0d) {
            this.#state = S.SizeLf;
          } else {
            throw this.#fail('invalid character in a chunk size');
          }
          i++;
          break;
        }
        case S.SizeExt:
          this.#extension(buf[i]!);
          i++;
          break;
        case S.SizeLf:
          if (buf[i] !== 0x0a) throw this.#fail('chunk size line does not end with CRLF');
          i++;
          this.#digits = 0;
          this.#state = this.#remaining === 0 ? S.TrailerStart : S.Data;
          break;
        case S.DataCr:
          if (buf[i] !== 0x0d) throw this.#fail('chunk data is longer than its size');
          i++;
          this.#state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[i] !== 0x0a) throw this.#fail('chunk data does not end with CRLF');
          i++;
          this.#state = S.Size;
          break;
        case S.TrailerStart:
          // Either the empty line that ends the body, or a trailer field line.
          if (buf[i] === 0x0d) {
            this.#state = S.LastLf;
            i++;
          } else if (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x3a) {
            throw this.#fail('a trailer line starts with whitespace (obsolete folding) or has no name');
          } else {
            this.#colon = false;
            this.#state = S.Trailer;
          }
          break;
        case S.Trailer: {
          const c = buf[i]!;
          if (++this.#trailerBytes > this.#maxTrailerBytes) throw this.#fail('trailer section too large');
          if (c === 0x3a) this.#colon = true;
          if (c === 0x0d) {
            if (!this.#colon) throw this.#fail('a trailer line has no colon');
            this.#state = S.TrailerLf;
          } else if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw this.#fail('invalid character in a trailer');
          i++;
          break;
        }
        case S.TrailerLf:
          if (buf[i] !== 0x0a) throw this.#fail('trailer line does not end with CRLF');
          i++;
          this.#state = S.TrailerStart;
          break;
        case S.LastLf:
          if (buf[i] !== 0x0a) throw this.#fail('chunked body does not end with CRLF');
          i++;
          this.#state = S.Done;
          break;
      }
    }
    return i - start;
  }

  /** One byte of a chunk extension: `;name`, `;name=token` or `;name="quoted"`, repeated, then CR. */
  #extension(c: number): void {
    const bad = () => this.#fail('malformed chunk extension');
    switch (this.#ext) {
      case X.Name:
        if (TCHAR[c] !== 1) throw bad();
        this.#ext = X.NameMore;
        return;
      case X.NameMore:
      case X.Token:
        if (TCHAR[c] === 1) return;
        if (c === 0x3d /* = */ && this.#ext === X.NameMore) this.#ext = X.ValueStart;
        else this.#extensionEnd(c);
        return;
      case X.ValueStart:
        if (c === 0x22 /* " */) this.#ext = X.Quoted;
        else if (TCHAR[c] === 1) this.#ext = X.Token;
        else throw bad();
        return;
      case X.Quoted:
        if (c === 0x22) this.#ext = X.AfterQuoted;
        else if (c === 0x5c /* \ */) this.#ext = X.Escape;
        else if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw bad();
        return;
      case X.Escape:
        if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw bad();
        this.#ext = X.Quoted;
        return;
      case X.AfterQuoted:
        this.#extensionEnd(c);
        return;
    }
  }

  /** After an extension: another one, or the end of the size line. */
  #extensionEnd(c: number): void {
    if (c === 0x3b) this.#ext = X.Name;
    else if (c === 0x0d) this.#state = S.SizeLf;
    else throw this.#fail('malformed chunk extension');
  }

  #fail(message: string): HeadError {
    return this.#request
      ? new HeadError(400, 'WEFT_E_BAD_FRAMING', `request refused: ${message}`)
      : new HeadError(502, 'WEFT_E_UPSTREAM_PROTOCOL', `the upstream sent a bad chunked body: ${message}`);
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
