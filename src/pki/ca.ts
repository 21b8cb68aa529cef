import { WeftError } from '../errors.js';
import type { Issuer } from './issuer.js';
import { basicConstraints, KEY_USAGE_BIT, keyUsage, uriSubjectAltName } from './extensions.js';
import { generateLeafKey } from './keys.js';
import { uriNameConstraintsExtension } from './name-constraints.js';
import { keyIdentifier, signCertificate, wholeSeconds } from './sign.js';
import { trustDomainId, validateTrustDomain } from './spiffe.js';

/** Default lifetime of a root CA: 10 years. */
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3_600_000;
/** Default lifetime of an intermediate CA: 1 year. */
export const DEFAULT_INTERMEDIATE_TTL_MS = 365 * 24 * 3_600_000;

const BACKDATE_MS = 30_000;

/** A CA certificate with its private key, both PEM (the key is PKCS#8, ECDSA P-256). */
export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Options of `createRoot`. */
export interface CreateRootOptions {
  readonly trustDomain: string;
  /** Lifetime; default 10 years. */
  readonly ttlMs?: number;
  /** Creation time; defaults to now (notBefore is 30 s earlier). */
  readonly now?: Date;
}

/** Options of `createIntermediate`. */
export interface CreateIntermediateOptions {
  /** The CA that signs the intermediate (normally a root loaded with `loadIssuerDir(dir, { role: 'root' })`). */
  readonly root: Issuer;
  readonly trustDomain: string;
  /** Lifetime; default 1 year, cut short so it never outlives the root. */
  readonly ttlMs?: number;
  readonly now?: Date;
  /**
   * Add the URI name constraint limiting the intermediate to its trust domain (default true).
   * Turn it off only for peers whose TLS library rejects URI name constraints (see docs/pki.md).
   */
  readonly nameConstraint?: boolean;
}

/**
 * Creates a self-signed root CA for a trust domain: ECDSA P-256 key, subject
 * `O=weft, OU=<trust domain>, CN=weft root CA <key id>`, basicConstraints CA:true (critical,
 * no path length limit), keyUsage keyCertSign + cRLSign (critical), SKID, and the URI SAN
 * `spiffe://<trust domain>`. Throws WEFT_E_TRUST_DOMAIN or WEFT_E_TTL.
 */
export async function createRoot(options: CreateRootOptions): Promise<CaMaterial> {
  validateTrustDomain(options.trustDomain);
  const ttlMs = checkTtl(options.ttlMs ?? DEFAULT_ROOT_TTL_MS);
  const now = wholeSeconds(options.now ?? new Date());
  const key = await generateLeafKey();
  const keyId = keyIdentifier(key.publicKey);
  const signed = await signCertificate(
    {
      subject: [
        ['O', 'weft'],
        ['OU', options.trustDomain],
        ['CN', `weft root CA ${keyId.slice(0, 8)}`],
      ],
      publicKey: key.publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + ttlMs),
      extensions: [
        basicConstraints(true, undefined, true),
        keyUsage([KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign], true),
        uriSubjectAltName([trustDomainId(options.trustDomain)], false),
      ],
    },
    { certPem: null, signingKey: key.privateKey, signingAlgorithm: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } },
  );
  return { certPem: signed.pem, keyPem: key.keyPem };
}

/**
 * Creates an intermediate CA signed by `root`: ECDSA P-256 key, subject
 * `O=weft, OU=<trust domain>, CN=weft intermediate CA <key id>`, basicConstraints CA:true
 * pathlen 0 (critical: it signs leaves only), keyUsage keyCertSign + cRLSign (critical),
 * SKID, AKID, URI SAN `spiffe://<trust domain>` and (unless `nameConstraint: false`) a
 * critical name constraint permitting only URIs whose host is the trust domain. Validity is cut short to end with the root's.
 * Throws WEFT_E_TRUST_DOMAIN, WEFT_E_TTL, WEFT_E_ISSUER_PATHLEN (the "root" may only sign
 * leaves) or WEFT_E_ISSUER_EXPIRED.
 */
export async function createIntermediate(options: CreateIntermediateOptions): Promise<CaMaterial> {
  validateTrustDomain(options.trustDomain);
  const ttlMs = checkTtl(options.ttlMs ?? DEFAULT_INTERMEDIATE_TTL_MS);
  const root = options.root;
  if (root.pathLength !== undefined && root.pathLength < 1) {
    throw new WeftError(
      'WEFT_E_ISSUER_PATHLEN',
      `"${root.subject}" may only sign service certificates (pathlen ${root.pathLength}), not another CA; use the root CA (root.pem/root.key)`,
    );
  }
  const now = wholeSeconds(options.now ?? new Date());
  const notAfter = new Date(Math.min(now.getTime() + ttlMs, root.notAfter.getTime()));
  if (notAfter.getTime() <= now.getTime()) {
    throw new WeftError('WEFT_E_ISSUER_EXPIRED', `the root CA ("${root.subject}") expired at ${root.notAfter.toISOString()}; create a new root`);
  }
  const key = await generateLeafKey();
  const keyId = keyIdentifier(key.publicKey);
  const signed = await signCertificate(
    {
      subject: [
        ['O', 'weft'],
        ['OU', options.trustDomain],
        ['CN', `weft intermediate CA ${keyId.slice(0, 8)}`],
      ],
      publicKey: key.publicKey,
      notBefore: new Date(Math.max(now.getTime() - BACKDATE_MS, root.notBefore.getTime())),
      notAfter,
      extensions: [
        basicConstraints(true, 0, true),
        keyUsage([KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign], true),
        uriSubjectAltName([trustDomainId(options.trustDomain)], false),
        ...(options.nameConstraint === false ? [] : [uriNameConstraintsExtension([options.trustDomain])]),
      ],
    },
    root,
  );
  return { certPem: signed.pem, keyPem: key.keyPem };
}

function checkTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < 60_000) {
    throw new WeftError('WEFT_E_TTL', `a CA lifetime must be at least 1m, got ${ttlMs}ms`);
  }
  return ttlMs;
}
