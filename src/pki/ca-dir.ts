import { join } from 'node:path';
import { createIntermediate, createRoot } from './ca.js';
import { CERT_FILE_MODE, KEY_FILE_MODE, writeFileAtomic } from './files.js';
import { loadIssuer } from './issuer.js';

/** The files of a weft CA directory (`weft ca init`, and the control plane's own CA). */
export function caFiles(dir: string) {
  return {
    rootCert: join(dir, 'root.pem'),
    rootKey: join(dir, 'root.key'),
    intermediateCert: join(dir, 'intermediate.pem'),
    intermediateKey: join(dir, 'intermediate.key'),
    bundle: join(dir, 'bundle.pem'),
  };
}

/**
 * Creates a root and an intermediate for `trustDomain` and writes them into `dir` (keys
 * mode 0600, each file written atomically); the caller decides whether replacing an
 * existing CA is allowed. Returns the certificates' PEM.
 */
export async function writeNewCaDir(
  dir: string,
  options: { trustDomain: string; rootTtlMs?: number; intermediateTtlMs?: number; nameConstraint?: boolean },
): Promise<{ rootPem: string; intermediatePem: string }> {
  const files = caFiles(dir);
  const root = await createRoot({ trustDomain: options.trustDomain, ...(options.rootTtlMs !== undefined ? { ttlMs: options.rootTtlMs } : {}) });
  const rootIssuer = await loadIssuer({ certPem: root.certPem, keyPem: root.keyPem });
  const intermediate = await createIntermediate({
    root: rootIssuer,
    trustDomain: options.trustDomain,
    ...(options.intermediateTtlMs !== undefined ? { ttlMs: options.intermediateTtlMs } : {}),
    nameConstraint: options.nameConstraint ?? true,
  });
  await writeFileAtomic(files.rootKey, root.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(files.rootCert, root.certPem, CERT_FILE_MODE);
  await writeFileAtomic(files.intermediateKey, intermediate.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(files.intermediateCert, intermediate.certPem, CERT_FILE_MODE);
  await writeFileAtomic(files.bundle, root.certPem, CERT_FILE_MODE);
  return { rootPem: root.certPem, intermediatePem: intermediate.certPem };
}
