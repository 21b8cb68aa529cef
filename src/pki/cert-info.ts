import { parseCertificate } from './parsed-certificate.js';

/** What `weft ca inspect` and the sidecar show about a certificate. */
export interface CertificateInfo {
  /** URI SANs that start with `spiffe://` (an X.509-SVID has exactly one). */
  readonly spiffeIds: string[];
  /** Serial number, lowercase hex without separators or leading zero padding. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Subject, RFC 4514 style (`O=weft, CN=web`). */
  readonly subject: string;
  readonly issuer: string;
  /** basicConstraints CA:true. */
  readonly isCA: boolean;
  /** SHA-256 fingerprint of the DER certificate, colon-separated uppercase hex (as OpenSSL prints it). */
  readonly fingerprint256: string;
  /** Public key type, e.g. `EC P-256` or `RSA 2048`. */
  readonly keyType: string;
}

/**
 * Describes the first certificate in `pem`. Throws WEFT_E_PEM when it is not a certificate.
 */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = parseCertificate(pem);
  const key = cert.node.publicKey;
  const details = key.asymmetricKeyDetails;
  const keyType =
    key.asymmetricKeyType === 'ec'
      ? `EC ${curveName(details?.namedCurve)}`
      : key.asymmetricKeyType === 'rsa'
        ? `RSA ${details?.modulusLength ?? '?'}`
        : (key.asymmetricKeyType ?? 'unknown');
  return {
    spiffeIds: cert.uris.filter((u) => u.startsWith('spiffe://')),
    serial: cert.serial,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    subject: cert.subject,
    issuer: cert.issuer,
    isCA: cert.isCA,
    fingerprint256: cert.node.fingerprint256,
    keyType,
  };
}

function curveName(curve: string | undefined): string {
  switch (curve) {
    case 'prime256v1':
      return 'P-256';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      return curve ?? '?';
  }
}
