import { randomBytes, sign, type KeyObject } from 'node:crypto';
import { encodeBitString, encodeElement, encodeOid, encodeTime, encodeUnsignedInteger, sequence, TAG } from './der.js';
import { authorityKeyIdentifier, encodeExtensions, keyIdentifierBytes, subjectKeyIdentifier, type CertificateExtension } from './extensions.js';
import type { SigningAlgorithm } from './keys.js';
import { toPem } from './keys.js';
import { parseCertificate } from './parsed-certificate.js';

/** Who signs a certificate: a CA certificate and its key, or the subject's own key (a root). */
export interface CertificateSigner {
  /** PEM of the signing CA's certificate, or null for a self-signed certificate. */
  readonly certPem: string | null;
  readonly signingKey: KeyObject;
  readonly signingAlgorithm: SigningAlgorithm;
}

/** The profile-specific parts of a certificate; `signCertificate` adds serial, SKID and AKID. */
export interface CertificateTemplate {
  /** Subject attributes in order, e.g. `[['O', 'weft'], ['CN', 'web']]`, one per RDN. Values are UTF8String. */
  readonly subject: ReadonlyArray<readonly [SubjectAttribute, string]>;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly CertificateExtension[];
}

/** A signed certificate. */
export interface SignedCertificate {
  readonly pem: string;
  /** Lowercase hex serial. */
  readonly serial: string;
}

/** Upper bound for subject attribute values (X.520 ub-common-name and friends). */
export const MAX_NAME_ATTRIBUTE = 64;

/** Subject attribute types weft writes. */
const SUBJECT_ATTRIBUTES = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11' } as const;
export type SubjectAttribute = keyof typeof SUBJECT_ATTRIBUTES;

/** signatureAlgorithm identifiers: ECDSA ones have no parameters, RSA ones a NULL. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, Uint8Array>> = {
  'ECDSA/SHA-256': sequence([encodeOid('1.2.840.10045.4.3.2')]),
  'ECDSA/SHA-384': sequence([encodeOid('1.2.840.10045.4.3.3')]),
  'ECDSA/SHA-512': sequence([encodeOid('1.2.840.10045.4.3.4')]),
  'RSASSA-PKCS1-v1_5/SHA-256': sequence([encodeOid('1.2.840.113549.1.1.11'), Uint8Array.of(TAG.NULL, 0)]),
};

/** The signatureAlgorithm AlgorithmIdentifier of a signing algorithm. */
export function signatureAlgorithmId(algorithm: SigningAlgorithm): Uint8Array {
  const id = SIGNATURE_ALGORITHMS[`${algorithm.name}/${algorithm.hash}`];
  if (id === undefined) throw new Error(`unsupported signing algorithm ${algorithm.name}/${algorithm.hash}`);
  return id;
}

/** A distinguished name, one attribute per RDN, values as UTF8String cut to 64 characters. */
export function encodeName(attributes: ReadonlyArray<readonly [SubjectAttribute, string]>): Uint8Array {
  return sequence(
    attributes.map(([type, value]) =>
      encodeElement(TAG.SET, sequence([encodeOid(SUBJECT_ATTRIBUTES[type]), encodeElement(TAG.UTF8_STRING, Buffer.from(value.slice(0, MAX_NAME_ATTRIBUTE), 'utf8'))])),
    ),
  );
}

const VERSION_3 = encodeElement(0xa0, encodeUnsignedInteger(Uint8Array.of(2)));

/**
 * Signs an X.509 v3 certificate: a random positive 16-byte serial, the template's subject
 * (each value cut to 64 characters), the issuer name copied byte for byte from the signer's
 * certificate, the template's extensions, then SubjectKeyIdentifier (SHA-1 of the key) and,
 * when not self-signed, an AuthorityKeyIdentifier equal to the signer's SKID (or computed
 * from its key when it has none).
 */
export async function signCertificate(template: CertificateTemplate, signer: CertificateSigner): Promise<SignedCertificate> {
  const subject = encodeName(template.subject);
  const extensions = [...template.extensions, subjectKeyIdentifier(keyIdentifierBytes(template.publicKey))];
  let issuer = subject;
  if (signer.certPem !== null) {
    const ca = parseCertificate(signer.certPem, 'the issuer certificate');
    issuer = ca.rawSubject;
    extensions.push(authorityKeyIdentifier(ca.subjectKeyId !== null ? Buffer.from(ca.subjectKeyId, 'hex') : keyIdentifierBytes(ca.node.publicKey)));
  }
  const algorithm = signer.signingAlgorithm;
  const algorithmId = signatureAlgorithmId(algorithm);
  const serial = randomSerial();
  const tbs = sequence([
    VERSION_3,
    encodeUnsignedInteger(serial),
    algorithmId,
    issuer,
    sequence([encodeTime(template.notBefore), encodeTime(template.notAfter)]),
    subject,
    template.publicKey.export({ type: 'spki', format: 'der' }),
    encodeExtensions(extensions),
  ]);
  const signature = await signAsync(algorithm.hash.replace('-', '').toLowerCase(), tbs, signer.signingKey);
  const der = sequence([tbs, algorithmId, encodeBitString(signature)]);
  return { pem: toPem('CERTIFICATE', der), serial: Buffer.from(serial).toString('hex') };
}

/** The hex SubjectKeyIdentifier weft would give a public key (SHA-1 of the key bits). */
export function keyIdentifier(publicKey: KeyObject): string {
  return keyIdentifierBytes(publicKey).toString('hex');
}

/** Truncates to whole seconds: X.509 times carry no fractions, so report what is encoded. */
export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** ECDSA signatures in DER (what X.509 wants), RSA with PKCS#1 v1.5 padding (the default). */
function signAsync(hash: string, data: Uint8Array, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(hash, data, { key, dsaEncoding: 'der' }, (err, signature) => (err ? reject(err) : resolve(signature)));
  });
}

/** 16 random bytes, top bit clear (positive) and first byte non-zero (minimal DER, never zero). */
function randomSerial(): Uint8Array {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f || 0x01;
  return bytes;
}
