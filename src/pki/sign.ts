import { webcrypto } from 'node:crypto';
import { x509, type CryptoKey } from './x509-lib.js';
import type { SigningAlgorithm } from './keys.js';
import { parseCertificate } from './parsed-certificate.js';

/** Who signs a certificate: a CA certificate and its key, or the subject's own key (a root). */
export interface CertificateSigner {
  /** PEM of the signing CA's certificate, or null for a self-signed certificate. */
  readonly certPem: string | null;
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: SigningAlgorithm;
}

/** The profile-specific parts of a certificate; `signCertificate` adds serial, SKID and AKID. */
export interface CertificateTemplate {
  /** Subject attributes in order, e.g. `[['O', 'weft'], ['CN', 'web']]`. Values are UTF8String. */
  readonly subject: ReadonlyArray<readonly [string, string]>;
  readonly publicKey: CryptoKey;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly x509.Extension[];
}

/** A signed certificate. */
export interface SignedCertificate {
  readonly pem: string;
  /** Lowercase hex serial. */
  readonly serial: string;
}

/** Upper bound for subject attribute values (X.520 ub-common-name and friends). */
export const MAX_NAME_ATTRIBUTE = 64;

/**
 * Signs a certificate: a random positive 16-byte serial, the template's subject (each value
 * cut to 64 characters), the issuer name copied from the signer's certificate (byte for byte
 * as far as the ASN.1 library preserves it), SubjectKeyIdentifier (SHA-1 of the key) and,
 * when not self-signed, an AuthorityKeyIdentifier equal to the signer's SKID.
 */
export async function signCertificate(template: CertificateTemplate, signer: CertificateSigner): Promise<SignedCertificate> {
  const subject = new x509.Name(
    template.subject.map(([type, value]) => ({ [type]: [{ utf8String: value.slice(0, MAX_NAME_ATTRIBUTE) }] })),
  );
  const extensions = [...template.extensions];
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(template.publicKey));
  let issuer = subject;
  if (signer.certPem !== null) {
    const ca = parseCertificate(signer.certPem, 'the issuer certificate');
    issuer = ca.x509.subjectName;
    extensions.push(
      ca.subjectKeyId !== null
        ? new x509.AuthorityKeyIdentifierExtension(ca.subjectKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(ca.x509.publicKey),
    );
  }
  const serial = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer,
    notBefore: template.notBefore,
    notAfter: template.notAfter,
    publicKey: template.publicKey,
    signingKey: signer.signingKey,
    signingAlgorithm: { name: signer.signingAlgorithm.name, hash: signer.signingAlgorithm.hash },
    extensions,
  });
  return { pem: cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n', serial };
}

/** The hex SubjectKeyIdentifier weft would give a public key (SHA-1 of the key bits). */
export async function keyIdentifier(publicKey: CryptoKey): Promise<string> {
  return (await x509.SubjectKeyIdentifierExtension.create(publicKey)).keyId.toLowerCase();
}

/** Truncates to whole seconds: X.509 times carry no fractions, so report what is encoded. */
export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** 16 random bytes, top bit clear (positive) and first byte non-zero (minimal DER, never zero). */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f || 0x01;
  return Buffer.from(bytes).toString('hex');
}
