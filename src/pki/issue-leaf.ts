import type { KeyObject } from 'node:crypto';
import { WeftError } from '../errors.js';
import { basicConstraints, EXT_KEY_USAGE, extKeyUsage, KEY_USAGE_BIT, keyUsage, subjectAltName } from './extensions.js';
import { generateLeafKey } from './keys.js';
import type { Issuer } from './issuer.js';
import { joinPem } from './pem.js';
import { signCertificate, wholeSeconds } from './sign.js';
import { parseSpiffeId } from './spiffe.js';

/** How far back a leaf's notBefore is set, to tolerate clocks running behind. */
export const CLOCK_SKEW_MS = 30_000;

/** Options of `issueLeaf`. */
export interface IssueLeafOptions {
  /** The workload's SPIFFE ID; must have a path and belong to the issuer's trust domain. */
  readonly spiffeId: string;
  /** Requested lifetime; cut short so the leaf never outlives the issuer. */
  readonly ttlMs: number;
  /** Certify this public key (from a CSR) instead of generating a key pair; `keyPem` is then ''. */
  readonly publicKey?: KeyObject;
  /** Issue as of this time; defaults to now. */
  readonly now?: Date;
  /**
   * DNS names and IP addresses to add after the SPIFFE ID, for a server that tools reach
   * by host name (the control plane API). Workload certificates have none.
   */
  readonly hostNames?: { readonly dnsNames: readonly string[]; readonly ips: readonly string[] };
}

/** A freshly issued X.509-SVID. */
export interface IssuedLeaf {
  /** The leaf followed by the issuer chain (no roots): what a TLS server or client presents. */
  readonly certPem: string;
  /** The leaf's PKCS#8 private key, or '' when the caller supplied the public key. */
  readonly keyPem: string;
  /** The leaf certificate alone. */
  readonly leafPem: string;
  /** Serial number, lowercase hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spiffeId: string;
}

/**
 * Issues an X.509-SVID for `spiffeId`: exactly one URI SAN (the ID), basicConstraints
 * CA:false (critical), keyUsage digitalSignature (critical), extKeyUsage serverAuth +
 * clientAuth, SKID, AKID, random positive 16-byte serial, subject `O=weft, CN=<last path
 * segment>`, an ECDSA P-256 key (unless `publicKey` is given), signed with the issuer's key
 * type. Valid from `now` − 30 s to `now` + ttl, clamped to the issuer's validity.
 * Throws WEFT_E_SPIFFE_ID (bad or path-less ID), WEFT_E_TRUST_DOMAIN_MISMATCH (ID outside
 * the issuer's trust domain), WEFT_E_TTL (ttl not positive), WEFT_E_ISSUER_EXPIRED.
 */
export async function issueLeaf(issuer: Issuer, options: IssueLeafOptions): Promise<IssuedLeaf> {
  const { trustDomain, path } = parseSpiffeId(options.spiffeId);
  if (path === '') {
    throw new WeftError(
      'WEFT_E_SPIFFE_ID',
      `"${options.spiffeId}" names a trust domain, not a workload; give a path, e.g. spiffe://${trustDomain}/ns/default/svc/web`,
    );
  }
  if (issuer.trustDomain !== null && issuer.trustDomain !== trustDomain) {
    throw new WeftError(
      'WEFT_E_TRUST_DOMAIN_MISMATCH',
      `"${options.spiffeId}" is in trust domain "${trustDomain}" but the issuer ("${issuer.subject}") signs for "${issuer.trustDomain}"; ` +
        'use an ID in that trust domain or an issuer for the other one',
    );
  }
  if (!Number.isFinite(options.ttlMs) || options.ttlMs < 1000) {
    throw new WeftError('WEFT_E_TTL', `the certificate ttl must be at least 1s, got ${options.ttlMs}ms`);
  }

  const now = wholeSeconds(options.now ?? new Date());
  const notBefore = new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, issuer.notBefore.getTime()));
  const notAfter = new Date(Math.min(now.getTime() + options.ttlMs, issuer.notAfter.getTime()));
  if (notAfter.getTime() <= now.getTime()) {
    throw new WeftError(
      'WEFT_E_ISSUER_EXPIRED',
      `the issuer ("${issuer.subject}") expired at ${issuer.notAfter.toISOString()}; create a new intermediate with \`weft ca intermediate\``,
    );
  }

  const generated = options.publicKey ? null : await generateLeafKey();
  const publicKey = options.publicKey ?? generated!.publicKey;
  const commonName = path.slice(path.lastIndexOf('/') + 1);
  const signed = await signCertificate(
    {
      subject: [
        ['O', 'weft'],
        ['CN', commonName],
      ],
      publicKey,
      notBefore,
      notAfter,
      extensions: [
        basicConstraints(false, undefined, true),
        keyUsage([KEY_USAGE_BIT.digitalSignature], true),
        extKeyUsage([EXT_KEY_USAGE.serverAuth, EXT_KEY_USAGE.clientAuth], false),
        subjectAltName({ uris: [options.spiffeId], ...options.hostNames }, false),
      ],
    },
    issuer,
  );
  return {
    certPem: joinPem([signed.pem, ...issuer.chainPems]),
    keyPem: generated?.keyPem ?? '',
    leafPem: signed.pem,
    serial: signed.serial,
    notBefore,
    notAfter,
    spiffeId: options.spiffeId,
  };
}
