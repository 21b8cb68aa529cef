import type { IdentityConfig, SidecarConfig } from '../config/sidecar-schema.js';
import type { Logger } from '../obs/log.js';
import { WeftError } from '../errors.js';
import { FileSource, SelfIssuingSource, type CertificateSource } from '../pki/certificate-source.js';
import { loadIssuer, loadIssuerDir } from '../pki/issuer.js';
import { readPemInput, splitPemCertificates } from '../pki/pem.js';
import { parseSpiffeId, serviceSpiffeId } from '../pki/spiffe.js';
import { certificateInfo } from '../pki/verify.js';

/** A started certificate source and the trust domain the sidecar's identity lives in. */
export interface SidecarIdentity {
  readonly source: CertificateSource;
  readonly trustDomain: string;
  readonly spiffeId: string;
}

/**
 * Builds and starts the certificate source the configuration asks for: self-issued from
 * an intermediate (directory, files or PEM text), or certificate files. The trust domain
 * is `trustDomain` if set, else the issuer's (its spiffe:// SAN or name constraint), else
 * the one in the certificate file. Throws a WeftError that names what to fix.
 */
export async function startIdentity(config: SidecarConfig, log: Logger): Promise<SidecarIdentity> {
  const identity: IdentityConfig | undefined = config.identity;
  if (identity === undefined) throw new Error('startIdentity: a connected sidecar gets its identity from the server');
  if (identity.issuer) {
    const issuerConfig = identity.issuer;
    const issuer =
      issuerConfig.dir !== undefined
        ? await loadIssuerDir(issuerConfig.dir)
        : await loadIssuer({
            certPem: await readPemInput(issuerConfig.cert!),
            keyPem: await readPemInput(issuerConfig.key!),
            bundlePem: issuerConfig.bundle !== undefined ? await readPemInput(issuerConfig.bundle) : undefined,
            sources: { cert: pemSource(issuerConfig.cert!), key: pemSource(issuerConfig.key!), bundle: issuerConfig.bundle && pemSource(issuerConfig.bundle) },
          });
    const trustDomain = config.trustDomain ?? issuer.trustDomain;
    if (trustDomain === null || trustDomain === undefined) {
      throw new WeftError(
        'WEFT_E_TRUST_DOMAIN',
        'the issuer certificate names no trust domain (no spiffe:// URI SAN or name constraint); set trustDomain (or --trust-domain / WEFT_TRUST_DOMAIN)',
      );
    }
    const spiffeId = serviceSpiffeId(trustDomain, config.namespace, config.service);
    const source = new SelfIssuingSource({ issuer, spiffeId, ttlMs: identity.ttl, log });
    await source.start();
    return { source, trustDomain, spiffeId };
  }
  const files = identity.files!;
  let trustDomain = config.trustDomain;
  if (trustDomain === undefined) {
    const leaf = splitPemCertificates(await readPemInput(files.cert), files.cert)[0]!;
    const ids = certificateInfo(leaf).spiffeIds;
    if (ids.length !== 1) throw new WeftError('WEFT_E_CERT_IDENTITY', `${files.cert} has no single spiffe:// URI SAN; it is not an X.509-SVID`);
    trustDomain = parseSpiffeId(ids[0]!).trustDomain;
  }
  const spiffeId = serviceSpiffeId(trustDomain, config.namespace, config.service);
  const source = new FileSource({ ...files, expectedSpiffeId: spiffeId, log });
  await source.start();
  return { source, trustDomain, spiffeId };
}

/** How to name an input in messages: its path, or "inline PEM" for PEM text from a variable. */
function pemSource(value: string): string {
  return value.includes('-----BEGIN') ? 'inline PEM (WEFT_ISSUER_*)' : value;
}
