import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { WeftError } from '../errors.js';
import { x509 } from './x509-lib.js';
import { children, rawCertificateNames, readElement } from './der.js';
import { readUriNameConstraints, type UriNameConstraints } from './name-constraints.js';

const SAN_OID = '2.5.29.17';
const TAG_URI = 0x86;

/**
 * A certificate decoded once, with the facts path validation and `weft ca inspect` need.
 * Internal to src/pki: callers outside use `certificateInfo`.
 */
export interface ParsedCertificate {
  /** The certificate as a single PEM block. */
  readonly pem: string;
  readonly der: Buffer;
  readonly node: NodeX509Certificate;
  readonly x509: x509.X509Certificate;
  /** RFC 4514-style subject, e.g. `O=weft, CN=web`. */
  readonly subject: string;
  readonly issuer: string;
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
    const cert = new x509.X509Certificate(der);
    const names = rawCertificateNames(der);
    const selfIssued = Buffer.from(names.issuer).equals(Buffer.from(names.subject));
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
    const skid = cert.getExtension(x509.SubjectKeyIdentifierExtension);
    const akid = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
    return {
      pem: node.toString(),
      der,
      node,
      x509: cert,
      subject: cert.subject,
      issuer: cert.issuer,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      isCA: basic?.ca === true,
      pathLength: basic?.ca === true ? basic.pathLength : undefined,
      mayIssueCertificates: keyUsage === null || (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) !== 0,
      uris: subjectAltUris(cert),
      selfIssued,
      selfSigned: selfIssued && node.verify(node.publicKey),
      uriConstraints: readUriNameConstraints(cert),
      subjectKeyId: skid?.keyId.toLowerCase() ?? null,
      authorityKeyId: akid?.keyId?.toLowerCase() ?? null,
    };
  } catch (err) {
    if (err instanceof WeftError) throw err;
    throw new WeftError('WEFT_E_PEM', `${what} is not a readable X.509 certificate (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/** The URI subject alternative names of a certificate. */
function subjectAltUris(cert: x509.X509Certificate): string[] {
  const ext = cert.getExtension(SAN_OID);
  if (!ext) return [];
  const buf = new Uint8Array(ext.value);
  return children(buf, readElement(buf, 0))
    .filter((el) => el.tag === TAG_URI)
    .map((el) => Buffer.from(buf.subarray(el.start, el.end)).toString('latin1'));
}
