import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { WeftError } from '../errors.js';
import { caFiles, writeNewCaDir } from '../pki/ca-dir.js';
import { KEY_FILE_MODE, pathExists, writeFileAtomic } from '../pki/files.js';
import { loadIssuer, type Issuer } from '../pki/issuer.js';
import { RESERVED_NAMESPACE } from '../config/names.js';
import { StoreConflictError } from './store/errors.js';
import type { JsonValue, Store } from './store/store.js';

/**
 * State that replicas sharing a store must agree on, kept in the store (namespace
 * `weft-system`): the CA every replica signs with, and the hash of the admin token. The
 * CA's private key is stored encrypted (AES-256-GCM, key derived with scrypt from the
 * operator's secret, `--ca-key-file`), never in plaintext: a copy of the database alone
 * cannot sign. The first replica to start creates both (compare-and-set: when two start
 * together, one wins and the other adopts its values).
 */

const CA = { kind: 'CertificateAuthority', namespace: RESERVED_NAMESPACE, name: 'default' } as const;
const ADMIN = { kind: 'AdminToken', namespace: RESERVED_NAMESPACE, name: 'default' } as const;
/** The shortest secret accepted for encrypting the CA key (`openssl rand -base64 32` gives 44 characters). */
export const MIN_CA_SECRET = 32;

interface SealedKey {
  alg: 'aes-256-gcm';
  kdf: 'scrypt';
  salt: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

interface CaSpec {
  trustDomain: string;
  certPem: string;
  bundlePem: string;
  key: SealedKey;
}

/** Encrypts `plaintext` with a key derived from `secret` (scrypt, a fresh salt). */
export function seal(plaintext: string, secret: string): SealedKey {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', scryptSync(secret, salt, 32), iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { alg: 'aes-256-gcm', kdf: 'scrypt', salt: salt.toString('base64'), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

/** Decrypts what `seal` made; throws WEFT_E_CA_KEY when `secret` is not the one it was sealed with. */
export function unseal(sealed: SealedKey, secret: string): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', scryptSync(secret, Buffer.from(sealed.salt, 'base64'), 32), Buffer.from(sealed.iv, 'base64'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new WeftError('WEFT_E_CA_KEY', 'the CA key in the store cannot be decrypted with this --ca-key-file: every replica needs the same CA key secret as the one that created the CA');
  }
}

/** Reads the operator's CA key secret (file or WEFT_CA_KEY); throws WEFT_E_CA_KEY saying what to provide. */
export async function readCaSecret(file: string | undefined, env: string | undefined): Promise<string> {
  const secret = file !== undefined ? (await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new WeftError('WEFT_E_CA_KEY', `cannot read --ca-key-file ${file} (${err.code ?? err.message})`);
  })).trim() : env?.trim();
  if (secret === undefined || secret === '') {
    throw new WeftError('WEFT_E_CA_KEY', 'with a shared store the CA key is kept encrypted: give the secret with --ca-key-file FILE or WEFT_CA_KEY (the same on every replica; make one with `openssl rand -base64 32`)');
  }
  if (secret.length < MIN_CA_SECRET) throw new WeftError('WEFT_E_CA_KEY', `the CA key secret is ${secret.length} characters; use at least ${MIN_CA_SECRET} (\`openssl rand -base64 32\`)`);
  return secret;
}

/**
 * The CA of the store, or a new one stored now: from `caDir` when given (a `weft ca init`
 * folder or an intermediate from Vault), else created (root and intermediate; the root's
 * key stays in `DATA/ca` on this replica only: move it offline).
 */
export async function loadOrCreateSharedCa(store: Store, options: { secret: string; caDir?: string; dataDir: string; trustDomain: string; log: Logger }): Promise<Issuer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const stored = await store.get(CA.kind, CA.namespace, CA.name);
    if (stored !== undefined) {
      const spec = stored.spec as unknown as CaSpec;
      const issuer = await loadIssuer({ certPem: spec.certPem, keyPem: unseal(spec.key, options.secret), bundlePem: spec.bundlePem, sources: { cert: 'the store', key: 'the store', bundle: 'the store' } });
      // The trust domain stored with the CA wins over this replica's --trust-domain.
      return issuer.trustDomain === null ? { ...issuer, trustDomain: spec.trustDomain } : issuer;
    }
    const source = options.caDir ?? join(options.dataDir, 'ca');
    if (options.caDir === undefined && !(await pathExists(caFiles(source).intermediateKey))) {
      await writeNewCaDir(source, { trustDomain: options.trustDomain });
      options.log.info({ ca: source, trustDomain: options.trustDomain }, 'created the CA (root and intermediate); its root key stays in this folder only: move it offline');
    }
    const files = caFiles(source);
    const [certPem, keyPem, bundlePem] = await Promise.all([readFile(files.intermediateCert, 'utf8'), readFile(files.intermediateKey, 'utf8'), readFile(files.bundle, 'utf8')]);
    const issuer = await loadIssuer({ certPem, keyPem, bundlePem });
    const spec: CaSpec = { trustDomain: issuer.trustDomain ?? options.trustDomain, certPem, bundlePem, key: seal(keyPem, options.secret) };
    try {
      await store.put({ ...CA, spec: spec as unknown as JsonValue }, { expectedRevision: 0 });
      options.log.info({ trustDomain: spec.trustDomain }, 'stored the CA in the shared store (key encrypted)');
      return issuer.trustDomain === null ? { ...issuer, trustDomain: spec.trustDomain } : issuer;
    } catch (err) {
      if (!(err instanceof StoreConflictError)) throw err;
      // Another replica stored its CA first: use that one.
    }
  }
  throw new WeftError('WEFT_E_CA', 'could not agree on a CA with the other replicas; restart');
}

/**
 * The SHA-256 of the admin token all replicas accept. The first replica stores the hash of
 * its `DATA/admin-token` (created when missing); the others use the stored hash, and say
 * so when their own file holds another token.
 */
export async function sharedAdminTokenHash(store: Store, options: { file: string; log: Logger }): Promise<Buffer> {
  const local = (await pathExists(options.file)) ? (await readFile(options.file, 'utf8')).trim() : null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const stored = await store.get(ADMIN.kind, ADMIN.namespace, ADMIN.name);
    if (stored !== undefined) {
      const hash = Buffer.from((stored.spec as { sha256: string }).sha256, 'hex');
      if (local === null) options.log.info({ file: options.file }, 'the admin token was created by another replica; copy its admin-token file here to use the CLI with --data');
      else if (!timingSafeEqual(hash, sha256(local))) options.log.warn({ file: options.file }, 'this admin-token file is not the mesh\'s admin token (another replica created it first); replace it with that replica\'s');
      return hash;
    }
    const token = local ?? randomBytes(32).toString('base64url');
    try {
      await store.put({ ...ADMIN, spec: { sha256: sha256(token).toString('hex') } }, { expectedRevision: 0 });
    } catch (err) {
      if (!(err instanceof StoreConflictError)) throw err;
      continue; // another replica stored its token first
    }
    if (local === null) await writeFileAtomic(options.file, `${token}\n`, KEY_FILE_MODE);
    return sha256(token);
  }
  throw new WeftError('WEFT_E_ADMIN_TOKEN', 'could not agree on an admin token with the other replicas; restart');
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
