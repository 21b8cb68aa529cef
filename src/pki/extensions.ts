import { createHash, type KeyObject } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { BOOLEAN_TRUE, children, contents, encodeBitString, encodeElement, encodeOctetString, encodeOid, encodeSmallInteger, readElement, sequence, TAG } from './der.js';

/** One X.509 v3 extension ready to be placed in a certificate: its OID, criticality and DER value. */
export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER encoding that goes inside the extnValue OCTET STRING. */
  readonly value: Uint8Array;
}

/** Extension OIDs weft writes or reads. */
export const EXTENSION_OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
} as const;

/** keyUsage bits (RFC 5280 §4.2.1.3), numbered as in the BIT STRING. */
export const KEY_USAGE_BIT = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

/** extKeyUsage purposes weft uses. */
export const EXT_KEY_USAGE = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;

const TAG_URI = 0x86;
const TAG_DNS = 0x82;
const TAG_IP = 0x87;
const TAG_KEY_ID = 0x80;

/** basicConstraints: CA flag and, for a CA, an optional pathLenConstraint. */
export function basicConstraints(ca: boolean, pathLength: number | undefined, critical: boolean): CertificateExtension {
  const parts = ca ? [BOOLEAN_TRUE, ...(pathLength !== undefined ? [encodeSmallInteger(pathLength)] : [])] : [];
  return { oid: EXTENSION_OID.basicConstraints, critical, value: sequence(parts) };
}

/** keyUsage with the given bits set (a DER named-bit BIT STRING: trailing zero bits dropped). */
export function keyUsage(bits: readonly number[], critical: boolean): CertificateExtension {
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return { oid: EXTENSION_OID.keyUsage, critical, value: encodeBitString(bytes, unused) };
}

/** extKeyUsage with the given purpose OIDs. */
export function extKeyUsage(purposes: readonly string[], critical: boolean): CertificateExtension {
  return { oid: EXTENSION_OID.extKeyUsage, critical, value: sequence(purposes.map(encodeOid)) };
}

/** subjectAltName holding URIs (uniformResourceIdentifier, IA5String). */
export function uriSubjectAltName(uris: readonly string[], critical: boolean): CertificateExtension {
  return subjectAltName({ uris }, critical);
}

/**
 * subjectAltName with URIs, DNS names (dNSName, IA5String) and IP addresses (iPAddress,
 * 4 or 16 bytes), in that order. A server that tools reach by host name (the control plane
 * API) carries DNS and IP names besides its SPIFFE ID.
 */
export function subjectAltName(names: { uris?: readonly string[]; dnsNames?: readonly string[]; ips?: readonly string[] }, critical: boolean): CertificateExtension {
  const parts = [
    ...(names.uris ?? []).map((u) => encodeElement(TAG_URI, Buffer.from(u, 'latin1'))),
    ...(names.dnsNames ?? []).map((d) => encodeElement(TAG_DNS, Buffer.from(d, 'latin1'))),
    ...(names.ips ?? []).map((ip) => encodeElement(TAG_IP, ipBytes(ip))),
  ];
  return { oid: EXTENSION_OID.subjectAltName, critical, value: sequence(parts) };
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  const [head = '', tail = ''] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/**
 * The key identifier of a public key: SHA-1 of the subjectPublicKey BIT STRING contents
 * (RFC 5280 §4.2.1.2, method 1), as 20 bytes.
 */
export function keyIdentifierBytes(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const bitString = children(spki, readElement(spki, 0))[1];
  if (bitString?.tag !== TAG.BIT_STRING) throw new Error('DER: SubjectPublicKeyInfo without a key');
  return createHash('sha1').update(contents(spki, bitString).subarray(1)).digest();
}

/** subjectKeyIdentifier (non-critical). */
export function subjectKeyIdentifier(keyId: Uint8Array): CertificateExtension {
  return { oid: EXTENSION_OID.subjectKeyIdentifier, critical: false, value: encodeOctetString(keyId) };
}

/** authorityKeyIdentifier with only the keyIdentifier field (non-critical). */
export function authorityKeyIdentifier(keyId: Uint8Array): CertificateExtension {
  return { oid: EXTENSION_OID.authorityKeyIdentifier, critical: false, value: sequence([encodeElement(TAG_KEY_ID, keyId)]) };
}

/** The `Extension` SEQUENCE as it appears in a certificate. */
export function encodeExtension(ext: CertificateExtension): Uint8Array {
  return sequence([encodeOid(ext.oid), ...(ext.critical ? [BOOLEAN_TRUE] : []), encodeOctetString(ext.value)]);
}

/** Concatenates `extensions` into the `[3] EXPLICIT Extensions` field of a TBSCertificate. */
export function encodeExtensions(extensions: readonly CertificateExtension[]): Uint8Array {
  return encodeElement(0xa3, sequence(extensions.map(encodeExtension)));
}
