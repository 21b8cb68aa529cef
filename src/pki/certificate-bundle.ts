import type { IssuedLeaf, Issuer } from './issuer.js';
import { joinPem } from './pem.js';

/**
 * A sidecar's current identity: everything one side of an mTLS connection needs, as PEM
 * text ready for `tls.createSecureContext({ key, cert, ca })`, plus what renewal and the
 * admin endpoint report.
 */
export interface CertificateBundle {
  /** The leaf's private key. */
  readonly keyPem: string;
  /** The leaf followed by its intermediates (no roots). */
  readonly chainPem: string;
  /** Trust anchors peers are verified against. */
  readonly bundlePem: string;
  /** The leaf's SPIFFE ID. */
  readonly spiffeId: string;
  /** The leaf's serial number, lowercase hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The bundle for a leaf just issued by `issuer` (the leaf must carry its own key, i.e. not a CSR issuance). */
export function certificateBundleFromLeaf(leaf: IssuedLeaf, issuer: Issuer): CertificateBundle {
  return {
    keyPem: leaf.keyPem,
    chainPem: leaf.certPem,
    bundlePem: joinPem(issuer.bundlePems),
    spiffeId: leaf.spiffeId,
    serial: leaf.serial,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
  };
}
