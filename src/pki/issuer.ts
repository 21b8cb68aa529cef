import type { KeyObject } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { importPrivateKey, type SigningAlgorithm } from './keys.js';
import { parseCertificate, type ParsedCertificate } from './parsed-certificate.js';
import { readPemInput, splitPemCertificates } from './pem.js';
import { parseSpiffeId } from './spiffe.js';
import { verifyPath } from './verify.js';

export { issueLeaf, type IssuedLeaf, type IssueLeafOptions } from './issue-leaf.js';

/**
 * A CA that can sign certificates: its certificate, the chain to send with what it signs,
 * the trust anchors, and its (non-extractable) signing key. Create with `loadIssuer` or
 * `loadIssuerDir`, which check that the pieces fit together.
 */
export interface Issuer {
  /** The issuing CA's own certificate (one PEM block). */
  readonly certPem: string;
  /** The issuer certificate followed by its parents up to, not including, the root: the chain to append to a leaf. Empty for a root. */
  readonly chainPems: string[];
  /** Trust anchors (root certificates) the issuer chains to. */
  readonly bundlePems: string[];
  /**
   * Trust domain of the issuer: from a `spiffe://TD` URI SAN or a single URI name constraint on
   * the issuer certificate, else on the next certificate up its verified chain; null if none says.
   */
  readonly trustDomain: string | null;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** RFC 4514-style subject of the issuer certificate. */
  readonly subject: string;
  /** basicConstraints pathLenConstraint of the issuer certificate (undefined: unlimited). */
  readonly pathLength: number | undefined;
  /** The private key. */
  readonly signingKey: KeyObject;
  readonly signingAlgorithm: SigningAlgorithm;
}

/** Input of `loadIssuer`. PEM texts, not paths (see `readPemInput`). */
export interface LoadIssuerInput {
  /** The issuer certificate, optionally followed by its parent CAs (as Vault hands them over). */
  readonly certPem: string;
  /** The issuer's private key: PKCS#8, SEC1 or PKCS#1 PEM. */
  readonly keyPem: string;
  /** Trust anchors. When absent, the self-signed certificates in `certPem` are used. */
  readonly bundlePem?: string;
  /** Where the inputs came from (file paths, env var names), named in error messages. */
  readonly sources?: { readonly cert?: string; readonly key?: string; readonly bundle?: string };
  /** Time to check validity at; defaults to now. */
  readonly now?: Date;
}

/**
 * Loads and checks an issuing CA. Throws WeftError:
 * WEFT_E_PEM / WEFT_E_KEY (unreadable input), WEFT_E_ISSUER_NOT_CA (no CA:true, or keyUsage
 * without keyCertSign), WEFT_E_ISSUER_KEY_MISMATCH (key is not the certificate's),
 * WEFT_E_ISSUER_EXPIRED / WEFT_E_ISSUER_NOT_YET_VALID, WEFT_E_TRUST_BUNDLE_REQUIRED (no
 * bundle given and no root in `certPem`), WEFT_E_ISSUER_UNTRUSTED (does not chain to the
 * bundle). Each message names the input to fix.
 */
export async function loadIssuer(input: LoadIssuerInput): Promise<Issuer> {
  const certName = describe('the issuer certificate', input.sources?.cert);
  const keyName = describe('the issuer key', input.sources?.key);
  const bundleName = describe('the trust bundle', input.sources?.bundle);
  const now = input.now ?? new Date();

  const certPems = splitPemCertificates(input.certPem, certName);
  const certs = certPems.map((pem, i) => parseCertificate(pem, i === 0 ? certName : `certificate #${i + 1} in ${certName}`));
  const cert = certs[0]!;

  if (!cert.isCA) {
    throw new WeftError(
      'WEFT_E_ISSUER_NOT_CA',
      `${certName} ("${cert.subject}") is not a CA certificate (basicConstraints CA:true is missing); ` +
        'point it at an intermediate CA certificate, not a service certificate',
    );
  }
  if (!cert.mayIssueCertificates) {
    throw new WeftError(
      'WEFT_E_ISSUER_NOT_CA',
      `${certName} ("${cert.subject}") may not sign certificates (its keyUsage lacks keyCertSign); use a CA certificate made for issuing`,
    );
  }

  const key = await importPrivateKey(input.keyPem, keyName);
  if (!key.publicKeySpki.equals(cert.node.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new WeftError(
      'WEFT_E_ISSUER_KEY_MISMATCH',
      `${keyName} is not the private key of ${certName} ("${cert.subject}"); pass the key that was generated together with that certificate`,
    );
  }

  if (now > cert.notAfter) {
    throw new WeftError(
      'WEFT_E_ISSUER_EXPIRED',
      `${certName} ("${cert.subject}") expired at ${cert.notAfter.toISOString()}; ` +
        'create a new intermediate (`weft ca intermediate --root ROOT_DIR --out DIR`) and point weft at it',
    );
  }
  if (now < cert.notBefore) {
    throw new WeftError(
      'WEFT_E_ISSUER_NOT_YET_VALID',
      `${certName} ("${cert.subject}") is not valid until ${cert.notBefore.toISOString()}; check this machine's clock`,
    );
  }

  let bundlePems: string[];
  if (input.bundlePem !== undefined) {
    bundlePems = splitPemCertificates(input.bundlePem, bundleName);
    bundlePems.forEach((pem, i) => parseCertificate(pem, `certificate #${i + 1} in ${bundleName}`));
  } else {
    bundlePems = certs.filter((c) => c.selfSigned).map((c) => c.pem);
    if (bundlePems.length === 0) {
      throw new WeftError(
        'WEFT_E_TRUST_BUNDLE_REQUIRED',
        `a trust bundle is required: ${certName} ("${cert.subject}") is not a root and does not include its root; ` +
          'give the root CA certificate as the bundle (bundle.pem, identity.issuer.bundle or WEFT_TRUST_BUNDLE)',
      );
    }
  }

  const verified = verifyPath({ certPems, bundlePems, now });
  if (!verified.ok) {
    throw new WeftError(
      'WEFT_E_ISSUER_UNTRUSTED',
      `${certName} ("${cert.subject}") does not chain to ${bundleName}: ${verified.reason}. ` +
        `Put the root CA that signed it in ${bundleName} (and any intermediate CAs after the certificate in ${certName})`,
    );
  }

  return {
    certPem: cert.pem,
    chainPems: verified.path.filter((c) => !c.selfSigned).map((c) => c.pem),
    bundlePems,
    trustDomain: trustDomainOfPath(verified.path),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    subject: cert.subject,
    pathLength: cert.pathLength,
    signingKey: key.key,
    signingAlgorithm: key.algorithm,
  };
}

/** Options of `loadIssuerDir`. */
export interface LoadIssuerDirOptions {
  /**
   * Which CA to load: 'intermediate' (intermediate.pem + intermediate.key), 'root' (root.pem +
   * root.key), or 'auto' (default): the intermediate when its key is there, else the root.
   */
  readonly role?: 'auto' | 'intermediate' | 'root';
  readonly now?: Date;
}

/**
 * Loads an issuer from a directory laid out by `weft ca init` / `weft ca intermediate`:
 * intermediate.pem, intermediate.key and bundle.pem, or root.pem and root.key. The bundle is
 * bundle.pem when present, else root.pem when present (and not the issuer itself), else the
 * roots inside the certificate file. Throws WEFT_E_ISSUER_DIR when the files are missing,
 * and whatever `loadIssuer` throws.
 */
export async function loadIssuerDir(dir: string, options: LoadIssuerDirOptions = {}): Promise<Issuer> {
  const role = options.role ?? 'auto';
  const has = async (name: string): Promise<boolean> => {
    try {
      await access(join(dir, name));
      return true;
    } catch {
      return false;
    }
  };
  const hasIntermediate = (await has('intermediate.pem')) && (await has('intermediate.key'));
  const hasRoot = (await has('root.pem')) && (await has('root.key'));
  const use =
    role === 'intermediate' || (role === 'auto' && hasIntermediate) ? 'intermediate' : role === 'root' || hasRoot ? 'root' : null;
  if (use === null || (use === 'intermediate' && !hasIntermediate) || (use === 'root' && !hasRoot)) {
    const wanted =
      use === 'intermediate' ? 'intermediate.pem and intermediate.key' : use === 'root' ? 'root.pem and root.key' : 'intermediate.pem and intermediate.key (or root.pem and root.key)';
    throw new WeftError(
      'WEFT_E_ISSUER_DIR',
      `"${dir}" is not a weft CA directory: it needs ${wanted}; create one with \`weft ca init --out ${dir} --trust-domain TD\``,
    );
  }
  const certFile = join(dir, `${use}.pem`);
  const keyFile = join(dir, `${use}.key`);
  const bundleFile = (await has('bundle.pem')) ? join(dir, 'bundle.pem') : use === 'intermediate' && hasRoot ? join(dir, 'root.pem') : null;
  return loadIssuer({
    certPem: await readPemInput(certFile),
    keyPem: await readPemInput(keyFile),
    ...(bundleFile !== null ? { bundlePem: await readPemInput(bundleFile) } : {}),
    sources: { cert: certFile, key: keyFile, ...(bundleFile !== null ? { bundle: bundleFile } : {}) },
    ...(options.now ? { now: options.now } : {}),
  });
}

/**
 * The trust domain a CA certificate declares: its `spiffe://TD` URI SAN (no path), else its
 * single URI permitted-subtree name constraint when that is a valid trust domain name; null
 * otherwise.
 */
export function trustDomainOfCertificate(cert: ParsedCertificate): string | null {
  for (const uri of cert.uris) {
    try {
      const id = parseSpiffeId(uri);
      if (id.path === '') return id.trustDomain;
    } catch {
      // not a SPIFFE trust domain ID; keep looking
    }
  }
  const permitted = cert.uriConstraints?.permitted ?? [];
  if (permitted.length === 1 && permitted[0] !== undefined) {
    try {
      return parseSpiffeId(`spiffe://${permitted[0]}`).trustDomain;
    } catch {
      return null;
    }
  }
  return null;
}

function trustDomainOfPath(path: readonly ParsedCertificate[]): string | null {
  for (const cert of path) {
    const td = trustDomainOfCertificate(cert);
    if (td !== null) return td;
  }
  return null;
}

function describe(what: string, source: string | undefined): string {
  return source ? `${what} (${source})` : what;
}
