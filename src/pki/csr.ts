import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { WeftError } from '../errors.js';
import { children, contents, encodeBitString, encodeElement, encodeOid, encodeSmallInteger, encoded, readElement, readOid, sequence, TAG } from './der.js';
import { encodeExtension, EXTENSION_OID, uriSubjectAltName } from './extensions.js';
import { signingAlgorithmOf, toPem } from './keys.js';
import { readExtensionList, subjectAltUris } from './parsed-certificate.js';
import { pemBlocks } from './pem.js';
import { encodeName, signatureAlgorithmId } from './sign.js';
import { parseSpiffeId } from './spiffe.js';

/**
 * PKCS#10 certificate signing requests (RFC 2986) for X.509-SVIDs: a sidecar makes its key
 * and sends only a CSR; the CA learns the public key and the SPIFFE ID asked for, and the
 * CSR's self-signature proves the sender holds the private key.
 */

/** What a verified CSR asks for. */
export interface CertificateRequest {
  readonly publicKey: KeyObject;
  /** The single spiffe:// URI SAN of the request. */
  readonly spiffeId: string;
}

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const ECDSA_HASHES: Readonly<Record<string, string>> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
};
/** The curves a workload key may use (what weft generates, and one step up). */
const CURVES = new Set(['prime256v1', 'secp384r1']);

/** A PEM `CERTIFICATE REQUEST` for `spiffeId`, signed with `privateKey` (EC P-256 or P-384). */
export function createCsr(privateKey: KeyObject, spiffeId: string): string {
  const { path } = parseSpiffeId(spiffeId);
  const algorithm = signingAlgorithmOf(privateKey, 'the workload key');
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve === 'P-521') {
    throw new WeftError('WEFT_E_CSR', 'a workload key must be ECDSA P-256 or P-384');
  }
  const publicKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const extensions = sequence([encodeExtension(uriSubjectAltName([spiffeId], false))]);
  const attribute = sequence([encodeOid(EXTENSION_REQUEST), encodeElement(TAG.SET, extensions)]);
  const info = sequence([
    encodeSmallInteger(0),
    encodeName([
      ['O', 'weft'],
      ['CN', path.slice(path.lastIndexOf('/') + 1)],
    ]),
    publicKey,
    encodeElement(0xa0, attribute),
  ]);
  const signature = sign(algorithm.hash.replace('-', '').toLowerCase(), info, { key: privateKey, dsaEncoding: 'der' });
  return toPem('CERTIFICATE REQUEST', sequence([info, signatureAlgorithmId(algorithm), encodeBitString(signature)]));
}

/**
 * Reads and verifies a PEM CSR: its self-signature, an EC P-256 or P-384 key, and exactly
 * one URI SAN that is a SPIFFE ID with a path. Throws WeftError WEFT_E_CSR saying what is
 * wrong. Whether the ID may be issued is the caller's decision.
 */
export function parseCsr(pem: string): CertificateRequest {
  const blocks = [...pemBlocks(pem, 'CERTIFICATE REQUEST'), ...pemBlocks(pem, 'NEW CERTIFICATE REQUEST')];
  if (blocks.length !== 1) throw new WeftError('WEFT_E_CSR', 'expected exactly one PEM "CERTIFICATE REQUEST" block');
  const der = blocks[0]!;
  let request: CertificateRequest;
  try {
    request = readCsr(der);
  } catch (err) {
    if (err instanceof WeftError) throw err;
    throw new WeftError('WEFT_E_CSR', `the certificate request is not valid DER: ${(err as Error).message}`);
  }
  return request;
}

function readCsr(der: Uint8Array): CertificateRequest {
  const [infoEl, algorithmEl, signatureEl] = children(der, readElement(der, 0));
  if (!infoEl || !algorithmEl || signatureEl?.tag !== TAG.BIT_STRING) throw new Error('CertificationRequest is too short');
  const [versionEl, , spkiEl, attributesEl] = children(der, infoEl);
  if (versionEl?.tag !== TAG.INTEGER || !spkiEl) throw new Error('CertificationRequestInfo is too short');

  const publicKey = createPublicKey({ key: Buffer.from(encoded(der, spkiEl)), format: 'der', type: 'spki' });
  const curve = publicKey.asymmetricKeyDetails?.namedCurve;
  if (publicKey.asymmetricKeyType !== 'ec' || curve === undefined || !CURVES.has(curve)) {
    throw new WeftError('WEFT_E_CSR', `the request's key is ${publicKey.asymmetricKeyType ?? 'unknown'}${curve ? ` (${curve})` : ''}; workload keys must be ECDSA P-256 or P-384`);
  }
  const algorithmOidEl = children(der, algorithmEl)[0];
  const hash = algorithmOidEl?.tag === TAG.OID ? ECDSA_HASHES[readOid(der, algorithmOidEl)] : undefined;
  if (hash === undefined) throw new WeftError('WEFT_E_CSR', 'the request is not signed with ECDSA SHA-256 or SHA-384');
  const signature = contents(der, signatureEl).subarray(1); // after the unused-bits byte
  if (!verify(hash, encoded(der, infoEl), { key: publicKey, dsaEncoding: 'der' }, signature)) {
    throw new WeftError('WEFT_E_CSR', 'the request signature does not verify: it was altered, or not signed by the key it carries');
  }

  let uris: string[] = [];
  if (attributesEl?.tag === 0xa0) {
    for (const attribute of children(der, attributesEl)) {
      const [typeEl, valuesEl] = children(der, attribute);
      if (!typeEl || !valuesEl || readOid(der, typeEl) !== EXTENSION_REQUEST) continue;
      const list = children(der, valuesEl)[0];
      const san = list ? readExtensionList(der, list).get(EXTENSION_OID.subjectAltName) : undefined;
      if (san !== undefined) uris = subjectAltUris(san);
    }
  }
  const spiffe = uris.filter((u) => u.startsWith('spiffe://'));
  if (spiffe.length !== 1 || uris.length !== 1) {
    throw new WeftError('WEFT_E_CSR', `the request must carry exactly one URI SAN, a SPIFFE ID; it has ${uris.length === 0 ? 'none' : uris.join(', ')}`);
  }
  const spiffeId = spiffe[0]!;
  let path: string;
  try {
    path = parseSpiffeId(spiffeId).path;
  } catch (err) {
    throw new WeftError('WEFT_E_CSR', `the request's SPIFFE ID is invalid: ${(err as Error).message}`);
  }
  if (path === '') throw new WeftError('WEFT_E_CSR', `"${spiffeId}" names a trust domain, not a workload`);
  return { publicKey, spiffeId };
}
