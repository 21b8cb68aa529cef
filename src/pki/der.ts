/**
 * Just enough DER for X.509 certificates as weft writes and reads them: walk elements, and
 * encode the few universal types a certificate needs (INTEGER, BOOLEAN, BIT/OCTET STRING,
 * OBJECT IDENTIFIER, times). Not a general ASN.1 library: multi-byte tags, indefinite
 * lengths and lengths above 2^32 are refused.
 */

/** One DER element: its tag byte and where its contents sit inside the buffer. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the last content byte. */
  readonly end: number;
  /** Offset of the tag byte (the whole element is `buf.subarray(offset, end)`). */
  readonly offset: number;
}

/**
 * Reads the element starting at `offset`. Throws a plain Error on truncated or
 * indefinite-length input (callers turn that into a user-facing error).
 */
export function readElement(buf: Uint8Array, offset: number): DerElement {
  const tag = buf[offset];
  let lenByte = buf[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new Error('DER: truncated element');
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not supported');
  let pos = offset + 2;
  let length = lenByte;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length encoding');
    length = 0;
    for (let i = 0; i < n; i++) {
      lenByte = buf[pos++];
      if (lenByte === undefined) throw new Error('DER: truncated length');
      length = length * 256 + lenByte;
    }
  }
  const end = pos + length;
  if (end > buf.length) throw new Error('DER: element runs past the end of the input');
  return { tag, start: pos, end, offset };
}

/** The child elements of a constructed element, in order. */
export function children(buf: Uint8Array, parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let pos = parent.start; pos < parent.end; ) {
    const el = readElement(buf, pos);
    if (el.end > parent.end) throw new Error('DER: child runs past its parent');
    out.push(el);
    pos = el.end;
  }
  return out;
}

/** Encodes one element from a tag byte and its (already encoded) contents. */
export function encodeElement(tag: number, contents: Uint8Array): Uint8Array {
  const n = contents.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else {
    const lenBytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) lenBytes.unshift(v & 0xff);
    header = [tag, 0x80 | lenBytes.length, ...lenBytes];
  }
  const out = new Uint8Array(header.length + n);
  out.set(header, 0);
  out.set(contents, header.length);
  return out;
}

/** Concatenates encoded elements (the contents of a SEQUENCE, say). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/**
 * The raw DER of a certificate's issuer and subject names (exactly as signed), for checks
 * that must compare bytes, as Go's chain builder does.
 */
export function rawCertificateNames(der: Uint8Array): { issuer: Uint8Array; subject: Uint8Array } {
  const cert = readElement(der, 0);
  const tbsEl = children(der, cert)[0];
  if (!tbsEl) throw new Error('DER: certificate has no TBSCertificate');
  const tbs = children(der, tbsEl);
  // [0] version is optional; then serial, signature, issuer, validity, subject.
  const first = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const issuer = tbs[first + 2];
  const subject = tbs[first + 4];
  if (!issuer || !subject) throw new Error('DER: TBSCertificate is too short');
  return {
    issuer: der.subarray(issuer.offset, issuer.end),
    subject: der.subarray(subject.offset, subject.end),
  };
}

/** Universal and context tags used by X.509. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** A SEQUENCE of already encoded elements. */
export function sequence(parts: readonly Uint8Array[]): Uint8Array {
  return encodeElement(TAG.SEQUENCE, concat(parts));
}

/** The contents of an element (without tag and length). */
export function contents(buf: Uint8Array, el: DerElement): Uint8Array {
  return buf.subarray(el.start, el.end);
}

/** The whole encoding of an element (tag, length and contents). */
export function encoded(buf: Uint8Array, el: DerElement): Uint8Array {
  return buf.subarray(el.offset, el.end);
}

/** An INTEGER from its big-endian magnitude (a non-negative number): minimal, with a 0x00 pad when the top bit is set. */
export function encodeUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  const pad = trimmed.length === 0 || (trimmed[0]! & 0x80) !== 0;
  return encodeElement(TAG.INTEGER, pad ? concat([Uint8Array.of(0), trimmed]) : trimmed);
}

/** A small non-negative INTEGER. */
export function encodeSmallInteger(n: number): Uint8Array {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return encodeUnsignedInteger(Uint8Array.from(bytes));
}

/** Reads a small non-negative INTEGER (up to 2^48). Throws on negative or oversized values. */
export function readSmallInteger(buf: Uint8Array, el: DerElement): number {
  if (el.tag !== TAG.INTEGER || el.end === el.start) throw new Error('DER: expected an INTEGER');
  if ((buf[el.start]! & 0x80) !== 0) throw new Error('DER: negative INTEGER');
  if (el.end - el.start > 7) throw new Error('DER: INTEGER too large');
  let n = 0;
  for (let i = el.start; i < el.end; i++) n = n * 256 + buf[i]!;
  return n;
}

/** BOOLEAN TRUE (DER leaves FALSE defaults out, so weft never encodes FALSE). */
export const BOOLEAN_TRUE: Uint8Array = Uint8Array.of(TAG.BOOLEAN, 1, 0xff);

/** A BIT STRING holding whole bytes (a key or a signature). */
export function encodeBitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return encodeElement(TAG.BIT_STRING, concat([Uint8Array.of(unusedBits), bytes]));
}

/** An OCTET STRING. */
export function encodeOctetString(bytes: Uint8Array): Uint8Array {
  return encodeElement(TAG.OCTET_STRING, bytes);
}

/** An OBJECT IDENTIFIER from its dotted form (`2.5.29.17`). */
export function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`DER: bad OID ${oid}`);
  const out: number[] = [];
  const push = (v: number) => {
    const bytes = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) bytes.unshift((x & 0x7f) | 0x80);
    out.push(...bytes);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return encodeElement(TAG.OID, Uint8Array.from(out));
}

/** The dotted form of an OBJECT IDENTIFIER element. */
export function readOid(buf: Uint8Array, el: DerElement): string {
  if (el.tag !== TAG.OID || el.end === el.start) throw new Error('DER: expected an OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let v = 0;
  for (let i = el.start; i < el.end; i++) {
    v = v * 128 + (buf[i]! & 0x7f);
    if ((buf[i]! & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/**
 * An X.509 Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050, in
 * whole seconds, UTC.
 */
export function encodeTime(date: Date): Uint8Array {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return encodeElement(TAG.UTC_TIME, new TextEncoder().encode(digits.slice(2)));
  return encodeElement(TAG.GENERALIZED_TIME, new TextEncoder().encode(digits));
}

/** Reads a UTCTime or GeneralizedTime (seconds precision, `Z`; fractions are ignored). */
export function readTime(buf: Uint8Array, el: DerElement): Date {
  const text = Buffer.from(contents(buf, el)).toString('latin1');
  const m =
    el.tag === TAG.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/.exec(text)
      : el.tag === TAG.GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/.exec(text)
        : null;
  if (!m) throw new Error(`DER: unsupported time "${text}"`);
  let year = Number(m[1]);
  if (el.tag === TAG.UTC_TIME) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)));
}
