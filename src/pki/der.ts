/**
 * Just enough DER to encode and walk the few structures @peculiar/x509 has no class for
 * (name constraints) and to read raw names out of a certificate. Not a general ASN.1 library.
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
