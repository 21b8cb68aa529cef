import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type { CertificateBundle } from '../pki/certificate-bundle.js';

/**
 * TLS 1.3 preferred, TLS 1.2 allowed with ECDHE key exchange and AEAD ciphers only
 * (DESIGN: defaults that are security decisions).
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Options shared by the server and client side of every mTLS connection. */
export function tlsOptions(bundle: CertificateBundle) {
  return {
    key: bundle.keyPem,
    cert: bundle.chainPem,
    ca: bundle.bundlePem,
    minVersion: 'TLSv1.2' as const,
    ciphers: TLS_CIPHERS,
    ecdhCurve: 'X25519:P-256:P-384',
    honorCipherOrder: true,
  };
}

/** The client-side secure context for connections to remote sidecars. */
export function clientSecureContext(bundle: CertificateBundle): SecureContext {
  return createSecureContext(tlsOptions(bundle));
}

/** What the sidecar knows about the peer of a connection, computed once per connection. */
export interface PeerIdentity {
  /** The peer's SPIFFE ID, or null for plaintext peers. */
  readonly spiffeId: string | null;
  /** SHA-256 of the peer's leaf certificate (DER), lowercase hex, for x-forwarded-client-cert. */
  readonly certHash: string | null;
}

export const PLAINTEXT_PEER: PeerIdentity = Object.freeze({ spiffeId: null, certHash: null });

/**
 * Reads the SPIFFE ID from the verified peer certificate of an established TLS socket:
 * the single `URI:spiffe://…` subject alternative name. Returns null when there is none
 * or more than one (an X.509-SVID has exactly one).
 */
export function peerSpiffeId(socket: TLSSocket): string | null {
  const san = socket.getPeerX509Certificate()?.subjectAltName;
  return san === undefined ? null : spiffeIdFromSan(san);
}

/** Extracts the single spiffe:// URI from an OpenSSL-style subjectaltname string. */
export function spiffeIdFromSan(san: string): string | null {
  // Node quotes SAN entries that contain separators or quotes (CVE-2021-44532); such an
  // entry could smuggle ", URI:spiffe://…" into the split below. No valid SPIFFE ID needs
  // quoting, so a quoted SAN list never yields an identity.
  if (san.includes('"')) return null;
  let found: string | null = null;
  for (const part of san.split(', ')) {
    if (part.startsWith('URI:spiffe://')) {
      if (found !== null) return null;
      found = part.slice(4);
    }
  }
  return found;
}

/**
 * The identity of the peer of a verified mTLS server-side socket. One X509Certificate per
 * handshake: `getPeerCertificate()` would build an object of every field (and three
 * fingerprints) that nothing here reads.
 */
export function tlsPeerIdentity(socket: TLSSocket): PeerIdentity {
  const x509 = socket.getPeerX509Certificate();
  if (x509 === undefined) return { spiffeId: null, certHash: null };
  const san = x509.subjectAltName;
  // fingerprint256 is the SHA-256 of the DER, as colon-separated upper-case hex.
  return { spiffeId: san === undefined ? null : spiffeIdFromSan(san), certHash: x509.fingerprint256.replaceAll(':', '').toLowerCase() };
}
