import { WeftError } from '../../errors.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import { validateCertificateFiles } from '../../pki/certificate-source.js';
import { createCsr } from '../../pki/csr.js';
import { generateLeafKey } from '../../pki/keys.js';
import { bundlePins } from '../../pki/pin.js';
import { serviceSpiffeId } from '../../pki/spiffe.js';
import { splitPemCertificates } from '../../pki/pem.js';
import { RESERVED_NAMESPACE } from '../../config/names.js';
import { refusalMessage, ServerClient } from './server-client.js';
import type { ServerRecord } from './state.js';

/**
 * The pin in a join token (`wft.<id>.<secret>.<pin>`). Throws WEFT_E_TOKEN for a token
 * without one (copied incompletely, or from an older server).
 */
export function tokenPin(token: string): string {
  const parts = token.trim().split('.');
  if (parts.length !== 4 || parts[0] !== 'wft' || !/^[A-Za-z0-9_-]{43}$/.test(parts[3]!)) {
    throw new WeftError('WEFT_E_TOKEN', 'the join token is malformed: expected wft.<id>.<secret>.<pin>, exactly as `weft token create` prints it');
  }
  return parts[3]!;
}

/**
 * Learns the server's trust domain and trust bundle, and believes them only if the bundle
 * holds the CA the token's pin names: the first call cannot verify the server (the sidecar
 * has no trust anchor yet), the pin makes up for it.
 */
export async function discoverServer(urls: readonly string[], token: string): Promise<ServerRecord> {
  const pin = tokenPin(token);
  const client = new ServerClient({ urls, trust: null, identity: () => null });
  const answer = await client.call('GET', '/v1/ca', { insecure: true, timeoutMs: 5000 });
  const info = answer.json ?? {};
  const { trustDomain, bundle, serverSpiffeId } = info as { trustDomain?: unknown; bundle?: unknown; serverSpiffeId?: unknown };
  if (answer.status !== 200 || typeof trustDomain !== 'string' || typeof bundle !== 'string' || typeof serverSpiffeId !== 'string') {
    throw new WeftError('WEFT_E_SERVER', `${client.url} is not a weft server (GET /v1/ca answered ${refusalMessage(answer)})`);
  }
  // Only the pinned certificate is trusted from this unverified answer: the rest of the
  // bundle (and anything an impostor could add to it) comes later over a verified channel.
  const pinned = splitPemCertificates(bundle, 'the server\'s bundle').find((pem) => bundlePins(pem)[0] === pin);
  if (pinned === undefined) {
    throw new WeftError('WEFT_E_SERVER_PIN', `the CA of ${client.url} is not the one the join token names: this is another server, or someone in between; check --server`);
  }
  const expected = serviceSpiffeId(trustDomain, RESERVED_NAMESPACE, 'weft-server');
  if (serverSpiffeId !== expected) throw new WeftError('WEFT_E_SERVER', `${client.url} names itself ${serverSpiffeId}, not ${expected}`);
  return { trustDomain, bundlePem: pinned, serverSpiffeId };
}

/**
 * Enrolls: generates a key (it never leaves this process), sends a CSR for this service's
 * SPIFFE ID with the join token over a connection verified against the pinned CA only,
 * and returns the certificate with the trust bundle of the (now authenticated) answer. Throws WEFT_E_ENROLL with
 * the server's reason when the token or CSR is refused, ServerUnreachable when no server
 * answered.
 */
export async function enroll(options: { urls: readonly string[]; token: string; server: ServerRecord; service: string; namespace: string }): Promise<CertificateBundle> {
  const spiffeId = serviceSpiffeId(options.server.trustDomain, options.namespace, options.service);
  const key = await generateLeafKey();
  const client = new ServerClient({ urls: options.urls, trust: options.server, identity: () => null });
  try {
    const answer = await client.call('POST', '/v1/enroll', { body: { token: options.token.trim(), csr: createCsr(key.privateKey, spiffeId) } });
    if (answer.status !== 200) throw new WeftError('WEFT_E_ENROLL', `the server refused to enroll ${spiffeId}: ${refusalMessage(answer)}`);
    return bundleFromAnswer(answer.json ?? {}, key.keyPem, spiffeId);
  } finally {
    client.close();
  }
}

/** The CertificateBundle of a signing answer (`{certificate, bundle}`), checked like certificate files. */
export function bundleFromAnswer(json: Record<string, unknown>, keyPem: string, spiffeId: string): CertificateBundle {
  const { certificate, bundle } = json as { certificate?: unknown; bundle?: unknown };
  if (typeof certificate !== 'string' || typeof bundle !== 'string') throw new WeftError('WEFT_E_ENROLL', 'the server answered without a certificate');
  return validateCertificateFiles({
    chainPem: certificate,
    keyPem,
    bundlePem: bundle,
    expectedSpiffeId: spiffeId,
    paths: { cert: 'the signed certificate', key: 'the generated key', bundle: "the server's trust bundle" },
  });
}
