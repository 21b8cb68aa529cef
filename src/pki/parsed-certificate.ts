import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { WeftError } from '../errors.js';
import { children, contents, encoded, readElement, readOid, readSmallInteger, readTime, TAG, type DerElement } from './der.js';
import { EXTENSION_OID, KEY_USAGE_BIT } from './extensions.js';
import { readUriNameConstraints, type UriNameConstraints } from './name-constraints.js';

const TAG_URI = 0x86;
const TAG_KEY_ID = 0x80;

/**
 * A certificate decoded once, with the facts path validation and `weft ca inspect` need.
 * Internal to src/pki: callers outside use `certificateInfo`.
 */
export interface ParsedCertificate {
  /** The certificate as a single PEM block. */
  readonly pem: string;
  readonly der: Buffer;
  readonly node: NodeX509Certificate;
  /** RFC 4514-style subject, e.g. `O=weft, CN=web`. */
  readonly subject: string;
  readonly issuer: string;
  /** The DER of the subject Name, byte for byte as signed. */
  readonly rawSubject: Uint8Array;
  /** Serial number, lowercase hex of the INTEGER's bytes (a 00 sign byte dropped). */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** basicConstraints CA:true. */
  readonly isCA: boolean;
  /** basicConstraints pathLenConstraint, when present. */
  readonly pathLength: number | undefined;
  /** False only when a keyUsage extension is present without keyCertSign. */
  readonly mayIssueCertificates: boolean;
  /** Every URI subject alternative name, in order. */
  readonly uris: string[];
  /** Issuer and subject names are byte-identical. */
  readonly selfIssued: boolean;
  /** Self-issued and signed by its own key: a root. */
  readonly selfSigned: boolean;
  /** URI name constraints, or null when the certificate has none. */
  readonly uriConstraints: UriNameConstraints | null;
  /** Subject key identifier (hex), when present. */
  readonly subjectKeyId: string | null;
  /** Authority key identifier key ID (hex), when present. */
  readonly authorityKeyId: string | null;
}

/**
 * Decodes one PEM certificate (the first block of `pem`). Throws WEFT_E_PEM naming `what`
 * when it cannot be decoded.
 */
export function parseCertificate(pem: string, what = 'the certificate'): ParsedCertificate {
  try {
    const node = new NodeX509Certificate(pem);
    const der = node.raw;
    const tbs = tbsFields(der);
    const extensions = readExtensions(der, tbs.extensions);
    const selfIssued = Buffer.from(encoded(der, tbs.issuer)).equals(Buffer.from(encoded(der, tbs.subject)));
    const basic = basicConstraintsOf(extensions.get(EXTENSION_OID.basicConstraints));
    const keyUsage = extensions.get(EXTENSION_OID.keyUsage);
    const san = extensions.get(EXTENSION_OID.subjectAltName);
    const nameConstraints = extensions.get(EXTENSION_OID.nameConstraints);
    const skid = extensions.get(EXTENSION_OID.subjectKeyIdentifier);
    const akid = extensions.get(EXTENSION_OID.authorityKeyIdentifier);
    return {
      pem: node.toString(),
      der,
      node,
      subject: formatName(der, tbs.subject),
      issuer: formatName(der, tbs.issuer),
      rawSubject: encoded(der, tbs.subject),
      serial: serialHex(contents(der, tbs.serial)),
      notBefore: readTime(der, tbs.notBefore),
      notAfter: readTime(der, tbs.notAfter),
      isCA: basic.ca,
      pathLength: basic.ca ? basic.pathLength : undefined,
      mayIssueCertificates: keyUsage === undefined || hasBit(keyUsage, KEY_USAGE_BIT.keyCertSign),
      uris: san ? subjectAltUris(san) : [],
      selfIssued,
      selfSigned: selfIssued && node.verify(node.publicKey),
      uriConstraints: nameConstraints ? readUriNameConstraints(nameConstraints) : null,
      subjectKeyId: skid ? octetStringHex(skid) : null,
      authorityKeyId: akid ? authorityKeyIdHex(akid) : null,
    };
  } catch (err) {
    if (err instanceof WeftError) throw err;
    throw new WeftError('WEFT_E_PEM', `${what} is not a readable X.509 certificate (${(err as Error).message})`, {
      cause: err,
    });
  }
}

interface TbsFields {
  readonly serial: DerElement;
  readonly issuer: DerElement;
  readonly notBefore: DerElement;
  readonly notAfter: DerElement;
  readonly subject: DerElement;
  /** The `[3]` element, or null for a certificate without extensions. */
  readonly extensions: DerElement | null;
}

function tbsFields(der: Uint8Array): TbsFields {
  const tbsEl = children(der, readElement(der, 0))[0];
  if (!tbsEl) throw new Error('DER: certificate has no TBSCertificate');
  const tbs = children(der, tbsEl);
  // [0] version is optional; then serial, signature, issuer, validity, subject, spki, [1], [2], [3].
  const first = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const [serial, , issuer, validity, subject] = tbs.slice(first);
  if (!serial || !issuer || !validity || !subject) throw new Error('DER: TBSCertificate is too short');
  const [notBefore, notAfter] = children(der, validity);
  if (!notBefore || !notAfter) throw new Error('DER: bad validity');
  const extensions = tbs.slice(first + 6).find((el) => el.tag === 0xa3) ?? null;
  return { serial, issuer, notBefore, notAfter, subject, extensions };
}

/** Extension values by OID (the bytes inside extnValue), from a certificate's `[3]` field. */
function readExtensions(der: Uint8Array, field: DerElement | null): Map<string, Uint8Array> {
  const list = field === null ? undefined : children(der, field)[0];
  return list === undefined ? new Map() : readExtensionList(der, list);
}

/** Extension values by OID from an `Extensions` SEQUENCE (certificates and CSRs). */
export function readExtensionList(der: Uint8Array, list: DerElement): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const ext of children(der, list)) {
    const parts = children(der, ext);
    const value = parts[parts.length - 1];
    if (!parts[0] || value?.tag !== TAG.OCTET_STRING) throw new Error('DER: bad extension');
    out.set(readOid(der, parts[0]), contents(der, value));
  }
  return out;
}

function basicConstraintsOf(value: Uint8Array | undefined): { ca: boolean; pathLength: number | undefined } {
  if (value === undefined) return { ca: false, pathLength: undefined };
  let ca = false;
  let pathLength: number | undefined;
  for (const el of children(value, readElement(value, 0))) {
    if (el.tag === TAG.BOOLEAN) ca = value[el.start] !== 0;
    else if (el.tag === TAG.INTEGER) pathLength = readSmallInteger(value, el);
  }
  return { ca, pathLength };
}

/** Whether a named-bit BIT STRING (keyUsage) has `bit` set. */
function hasBit(value: Uint8Array, bit: number): boolean {
  const el = readElement(value, 0);
  const at = el.start + 1 + (bit >> 3); // after the unused-bits byte
  return at < el.end && (value[at]! & (0x80 >> (bit & 7))) !== 0;
}

function octetStringHex(value: Uint8Array): string {
  return Buffer.from(contents(value, readElement(value, 0))).toString('hex');
}

function authorityKeyIdHex(value: Uint8Array): string | null {
  const keyId = children(value, readElement(value, 0)).find((el) => el.tag === TAG_KEY_ID);
  return keyId ? Buffer.from(contents(value, keyId)).toString('hex') : null;
}

/** The URI subject alternative names in a subjectAltName value. */
export function subjectAltUris(value: Uint8Array): string[] {
  return children(value, readElement(value, 0))
    .filter((el) => el.tag === TAG_URI)
    .map((el) => Buffer.from(contents(value, el)).toString('latin1'));
}

function serialHex(bytes: Uint8Array): string {
  const b = bytes.length > 1 && bytes[0] === 0 && bytes[1]! > 0x7f ? bytes.subarray(1) : bytes;
  return Buffer.from(b).toString('hex');
}

/** Short names of attribute types, as weft has always printed them. */
const ATTRIBUTE_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

/**
 * An RFC 4514-style string for a Name, in the order of the certificate: RDNs joined with
 * `, `, multi-valued RDNs with `+`, string values escaped, other values as `#` + hex DER.
 */
export function formatName(der: Uint8Array, name: DerElement): string {
  return children(der, name)
    .map((rdn) =>
      children(der, rdn)
        .map((atv) => {
          const [type, value] = children(der, atv);
          if (!type || !value) throw new Error('DER: bad name attribute');
          const oid = readOid(der, type);
          const text = directoryString(der, value);
          return `${ATTRIBUTE_NAMES[oid] ?? oid}=${text === null ? `#${Buffer.from(encoded(der, value)).toString('hex')}` : escapeValue(text)}`;
        })
        .join('+'),
    )
    .join(', ');
}

/** The text of a string-typed attribute value, or null for other types. */
function directoryString(der: Uint8Array, el: DerElement): string | null {
  const bytes = Buffer.from(contents(der, el));
  switch (el.tag) {
    case TAG.UTF8_STRING:
      return bytes.toString('utf8');
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.TELETEX_STRING:
      return bytes.toString('latin1');
    case TAG.BMP_STRING:
      return bytes.swap16().toString('utf16le');
    case TAG.UNIVERSAL_STRING: {
      let s = '';
      for (let i = 0; i + 3 < bytes.length; i += 4) s += String.fromCodePoint(bytes.readUInt32BE(i));
      return s;
    }
    default:
      return null;
  }
}

function escapeValue(value: string): string {
  return value
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (c) => `\\${Buffer.from(c, 'utf8').toString('hex').toUpperCase()}`);
}
