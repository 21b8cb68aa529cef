import { createPublicKey, createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { WeftError } from '../errors.js';

/** How a key signs certificates: ECDSA with the hash matching its curve, or RSA PKCS#1 v1.5 with SHA-256. */
export type SigningAlgorithm =
  | { readonly name: 'ECDSA'; readonly namedCurve: 'P-256'; readonly hash: 'SHA-256' }
  | { readonly name: 'ECDSA'; readonly namedCurve: 'P-384'; readonly hash: 'SHA-384' }
  | { readonly name: 'ECDSA'; readonly namedCurve: 'P-521'; readonly hash: 'SHA-512' }
  | { readonly name: 'RSASSA-PKCS1-v1_5'; readonly hash: 'SHA-256' };

/** A freshly generated key pair with its private key in PEM form. */
export interface GeneratedKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The private key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
  readonly keyPem: string;
}

/** A private key ready to sign with. */
export interface ImportedKey {
  /** The private key (node:crypto). */
  readonly key: KeyObject;
  readonly algorithm: SigningAlgorithm;
  /** DER SubjectPublicKeyInfo of the matching public key (to compare with a certificate). */
  readonly publicKeySpki: Buffer;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * Generates an ECDSA P-256 key pair (the key type of every certificate weft creates), off
 * the event loop, with the private key as PKCS#8 PEM in `keyPem`.
 */
export async function generateLeafKey(): Promise<GeneratedKey> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  return { privateKey, publicKey, keyPem: toPem('PRIVATE KEY', pkcs8) };
}

/**
 * Imports a PEM private key for signing. Accepts PKCS#8 ("PRIVATE KEY"), SEC1
 * ("EC PRIVATE KEY", as `openssl ecparam -genkey` writes, with or without its
 * "EC PARAMETERS" block) and PKCS#1 ("RSA PRIVATE KEY"). Supported: EC P-256 (signs with
 * ECDSA SHA-256), P-384 (SHA-384), P-521 (SHA-512) and RSA (PKCS#1 v1.5 SHA-256).
 * Throws WEFT_E_KEY, naming `what` (e.g. the file), for anything else, including
 * encrypted keys.
 */
export async function importPrivateKey(pem: string, what = 'the private key'): Promise<ImportedKey> {
  const key = parsePrivateKey(pem, what);
  const algorithm = signingAlgorithmOf(key, what);
  const publicKeySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return { key, algorithm, publicKeySpki };
}

/**
 * Parses a PEM private key into a Node KeyObject (see importPrivateKey for the accepted
 * formats). Throws WEFT_E_KEY naming `what`.
 */
export function parsePrivateKey(pem: string, what = 'the private key'): KeyObject {
  const block = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/.exec(pem);
  if (!block) {
    throw new WeftError(
      'WEFT_E_KEY',
      `${what} contains no PEM private key ("-----BEGIN PRIVATE KEY-----", "EC PRIVATE KEY" or "RSA PRIVATE KEY"); is it the right file?`,
    );
  }
  if (block[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block[0])) {
    throw new WeftError(
      'WEFT_E_KEY',
      `${what} is encrypted; weft needs it unencrypted: \`openssl pkey -in KEY -out KEY.plain\`, then keep that file mode 0600`,
    );
  }
  try {
    return createPrivateKey({ key: block[0], format: 'pem' });
  } catch (err) {
    throw new WeftError('WEFT_E_KEY', `${what} is not a readable private key (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/** The signing algorithm weft uses for a private key; throws WEFT_E_KEY for unsupported key types. */
export function signingAlgorithmOf(key: KeyObject, what = 'the private key'): SigningAlgorithm {
  if (key.asymmetricKeyType === 'ec') {
    switch (key.asymmetricKeyDetails?.namedCurve) {
      case 'prime256v1':
        return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
      case 'secp384r1':
        return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
      case 'secp521r1':
        return { name: 'ECDSA', namedCurve: 'P-521', hash: 'SHA-512' };
    }
    throw new WeftError(
      'WEFT_E_KEY',
      `${what} uses the EC curve ${key.asymmetricKeyDetails?.namedCurve ?? '(unknown)'}; use P-256, P-384 or P-521`,
    );
  }
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new WeftError(
    'WEFT_E_KEY',
    `${what} is a ${key.asymmetricKeyType ?? 'unknown'} key; weft signs with EC (P-256, P-384, P-521) or RSA keys`,
  );
}

/** Wraps DER bytes in a PEM block with 64-character lines. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
