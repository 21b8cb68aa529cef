import { createHash } from 'node:crypto';
import { pemBlocks } from './pem.js';

/**
 * The pin of a CA certificate: SHA-256 of its DER, base64url (43 characters). A join
 * token carries the pin of the server's first trust anchor, so that a sidecar enrolling
 * over the network can tell the real server's trust bundle from an impostor's before it
 * trusts anything (the way kubeadm's `--discovery-token-ca-cert-hash` works).
 */
export function certificatePin(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** The pins of every certificate in PEM text, in order. */
export function bundlePins(bundlePem: string): string[] {
  return pemBlocks(bundlePem, 'CERTIFICATE').map(certificatePin);
}
