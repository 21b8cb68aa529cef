import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { parsePrivateKey } from './keys.js';
import { uriAllowed } from './name-constraints.js';
import { parseCertificate, type ParsedCertificate } from './parsed-certificate.js';
import { splitPemCertificates } from './pem.js';

export { certificateInfo, type CertificateInfo } from './cert-info.js';

/** Outcome of `verifyChain`. */
export type VerifyResult =
  | { readonly ok: true; /** Subjects from the leaf to the trust anchor. */ readonly chain: string[] }
  | { readonly ok: false; /** Why no trusted path was found, for a human. */ readonly reason: string };

/** Input of `verifyChain`. */
export interface VerifyChainInput {
  /** The certificate to verify first, then any intermediates (in any order). Entries may hold several PEM blocks. */
  readonly certPems: readonly string[];
  /** Trust anchors (roots). Entries may hold several PEM blocks. */
  readonly bundlePems: readonly string[];
  /** Time to validate at; defaults to now. */
  readonly now?: Date;
}

const MAX_PATH = 8;

/**
 * Verifies that the first certificate chains to one of the trust anchors. Builds candidate
 * paths by issuer/subject name and key identifiers through the given intermediates, and
 * accepts the first path on which every signature verifies, every certificate is within its
 * validity period at `now`, every issuer is a CA allowed to sign certificates, path length
 * constraints hold and URI name constraints permit the URI SANs below them.
 * Never throws: unreadable input is reported as `{ ok: false }`.
 * Revocation and certificate policies are not checked.
 */
export function verifyChain(input: VerifyChainInput): VerifyResult {
  const result = verifyPath(input);
  return result.ok ? { ok: true, chain: result.path.map((c) => c.subject) } : result;
}

/** Like `verifyChain`, but returns the decoded certificates of the path (leaf first). Internal to src/pki. */
export function verifyPath(
  input: VerifyChainInput,
): { ok: true; path: ParsedCertificate[] } | { ok: false; reason: string } {
  let certs: ParsedCertificate[];
  let anchors: ParsedCertificate[];
  try {
    certs = input.certPems.flatMap((p) => splitPemCertificates(p, 'the certificate chain')).map((p) => parseCertificate(p));
    anchors = input.bundlePems.flatMap((p) => splitPemCertificates(p, 'the trust bundle')).map((p) => parseCertificate(p, 'a trust bundle certificate'));
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  const leaf = certs[0];
  if (!leaf) return { ok: false, reason: 'there is no certificate to verify' };
  if (anchors.length === 0) return { ok: false, reason: 'the trust bundle is empty' };
  const now = input.now ?? new Date();
  const problems: string[] = [];
  for (const path of candidatePaths([leaf], certs.slice(1), anchors, problems)) {
    const problem = pathProblem(path, now);
    if (problem === null) return { ok: true, path };
    problems.push(problem);
  }
  return { ok: false, reason: problems[0] ?? `no path to a trust anchor for "${leaf.subject}"` };
}

/**
 * True when `keyPem` is the private key of the (first) certificate in `certPem`.
 * False for a mismatch and for unreadable input.
 */
export function leafMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new NodeX509Certificate(certPem).checkPrivateKey(parsePrivateKey(keyPem));
  } catch {
    return false;
  }
}

function* candidatePaths(
  path: ParsedCertificate[],
  pool: ParsedCertificate[],
  anchors: ParsedCertificate[],
  problems: string[],
): Generator<ParsedCertificate[]> {
  const current = path[path.length - 1];
  if (!current) return;
  if (anchors.some((a) => a.der.equals(current.der))) {
    yield path;
    return;
  }
  if (path.length >= MAX_PATH) {
    problems.push(`the chain is longer than ${MAX_PATH} certificates`);
    return;
  }
  let nameMatch = false;
  for (const anchor of anchors) {
    const verdict = issuedBy(current, anchor);
    if (verdict !== 'other-issuer') nameMatch = true;
    if (verdict === 'yes') yield [...path, anchor];
    else if (verdict !== 'other-issuer') problems.push(verdict);
  }
  for (const candidate of pool) {
    if (path.some((c) => c.der.equals(candidate.der))) continue;
    const verdict = issuedBy(current, candidate);
    if (verdict !== 'other-issuer') nameMatch = true;
    if (verdict === 'yes') yield* candidatePaths([...path, candidate], pool, anchors, problems);
    else if (verdict !== 'other-issuer') problems.push(verdict);
  }
  if (!nameMatch) {
    problems.push(
      `nothing in the chain or the trust bundle issued "${current.subject}" (its issuer is "${current.issuer}"); ` +
        'the bundle lacks the root CA, or the intermediate is missing from the chain',
    );
  }
}

/** 'yes', 'other-issuer' (names or key IDs do not match), or a reason the signature failed. */
function issuedBy(child: ParsedCertificate, parent: ParsedCertificate): string {
  if (child.node.issuer !== parent.node.subject) return 'other-issuer';
  if (child.authorityKeyId && parent.subjectKeyId && child.authorityKeyId !== parent.subjectKeyId) {
    return 'other-issuer';
  }
  let ok = false;
  try {
    ok = child.node.verify(parent.node.publicKey);
  } catch {
    ok = false;
  }
  return ok
    ? 'yes'
    : `the signature on "${child.subject}" does not verify with the key of "${parent.subject}" (a different CA with the same name?)`;
}

function pathProblem(path: ParsedCertificate[], now: Date): string | null {
  for (const cert of path) {
    if (now < cert.notBefore) return `"${cert.subject}" is not valid until ${cert.notBefore.toISOString()} (check the clock)`;
    if (now > cert.notAfter) return `"${cert.subject}" expired at ${cert.notAfter.toISOString()}`;
  }
  for (let i = 1; i < path.length; i++) {
    const ca = path[i]!;
    const below = path.slice(0, i);
    if (!ca.isCA) return `"${ca.subject}" issued "${below[i - 1]!.subject}" but is not a CA (basicConstraints CA:true missing)`;
    if (!ca.mayIssueCertificates) return `"${ca.subject}" is a CA whose keyUsage lacks keyCertSign`;
    if (ca.pathLength !== undefined) {
      const intermediates = below.slice(1).filter((c) => !c.selfIssued).length;
      if (intermediates > ca.pathLength) {
        return `"${ca.subject}" allows ${ca.pathLength} intermediate CA(s) below it (pathlen) but the chain has ${intermediates}`;
      }
    }
    const constraints = ca.uriConstraints;
    if (constraints) {
      for (const cert of below) {
        const bad = cert.uris.find((u) => !uriAllowed(u, constraints));
        if (bad !== undefined) return `"${ca.subject}" is name-constrained and does not permit the URI ${bad} in "${cert.subject}"`;
      }
    }
  }
  return null;
}
