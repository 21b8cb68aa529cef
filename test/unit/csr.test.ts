/**
 * PKCS#10 requests: what weft writes, openssl reads and verifies; what openssl writes, weft
 * reads; a request that was altered, carries no or several identities, or an unsupported
 * key is refused; a leaf issued for a request certifies the request's key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCsr, parseCsr } from '../../src/pki/csr.js';
import { createIntermediate, createRoot } from '../../src/pki/ca.js';
import { issueLeaf, loadIssuer } from '../../src/pki/issuer.js';
import { generateLeafKey } from '../../src/pki/keys.js';
import { pemBlocks } from '../../src/pki/pem.js';
import { WeftError } from '../../src/errors.js';
import { tempDir } from '../helpers/weft.js';

const run = promisify(execFile);
const ID = 'spiffe://example.org/ns/shop/svc/web';


const refused = (pem: string, pattern: RegExp) =>
  assert.throws(() => parseCsr(pem), (err: unknown) => err instanceof WeftError && err.code === 'WEFT_E_CSR' && pattern.test(err.message));

test('openssl verifies the self-signature of a weft CSR and reads its SPIFFE ID', async (t) => {
  const dir = await tempDir(t);
  const key = await generateLeafKey();
  const pem = createCsr(key.privateKey, ID);
  await writeFile(join(dir, 'req.pem'), pem);
  const { stdout, stderr } = await run('openssl', ['req', '-in', 'req.pem', '-noout', '-verify', '-text'], { cwd: dir });
  assert.match(stdout + stderr, /verify OK/i);
  assert.match(stdout, new RegExp(`URI:${ID.replaceAll('/', '\\/')}`));
  assert.match(stdout, /Subject: O *= *weft, CN *= *web/);
  const parsed = parseCsr(pem);
  assert.equal(parsed.spiffeId, ID);
  assert.ok(parsed.publicKey.equals(key.publicKey), 'the request carries the key it was signed with');
});

test('a CSR made by openssl is read; P-384 keys are accepted', async (t) => {
  const dir = await tempDir(t);
  for (const curve of ['prime256v1', 'secp384r1']) {
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-nodes', '-keyout', 'k.pem', '-out', 'r.pem', '-subj', '/CN=web', '-addext', `subjectAltName=URI:${ID}`], { cwd: dir });
    const parsed = parseCsr(await readFile(join(dir, 'r.pem'), 'utf8'));
    assert.equal(parsed.spiffeId, ID, curve);
  }
});

test('altered, identity-less, multi-identity and RSA requests are refused with the reason', async (t) => {
  const dir = await tempDir(t);
  const key = await generateLeafKey();
  const pem = createCsr(key.privateKey, ID);
  // Flip one byte of the SPIFFE ID inside the signed part.
  const der = pemBlocks(pem, 'CERTIFICATE REQUEST')[0]!;
  const at = der.indexOf(Buffer.from('svc/web'));
  der[at + 4] = 'x'.charCodeAt(0);
  refused(`-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`, /does not verify/);

  const ossl = (args: string[]) => run('openssl', ['req', '-new', '-nodes', '-keyout', 'k.pem', '-out', 'r.pem', '-subj', '/CN=web', ...args], { cwd: dir });
  await ossl(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']);
  refused(await readFile(join(dir, 'r.pem'), 'utf8'), /exactly one URI SAN.*none/);
  await ossl(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-addext', `subjectAltName=URI:${ID},URI:spiffe://example.org/ns/shop/svc/admin`]);
  refused(await readFile(join(dir, 'r.pem'), 'utf8'), /exactly one URI SAN/);
  await ossl(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-addext', 'subjectAltName=URI:spiffe://example.org']);
  refused(await readFile(join(dir, 'r.pem'), 'utf8'), /names a trust domain/);
  await ossl(['-newkey', 'rsa:2048', '-addext', `subjectAltName=URI:${ID}`]);
  refused(await readFile(join(dir, 'r.pem'), 'utf8'), /must be ECDSA P-256 or P-384/);
  refused('not a pem', /exactly one PEM/);
  refused('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', /not valid DER/);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.throws(() => createCsr(rsa.privateKey, ID), (err: unknown) => err instanceof WeftError && err.code === 'WEFT_E_CSR');
});

test('a leaf issued for a CSR certifies the requested key and ID, and openssl verifies it', async (t) => {
  const dir = await tempDir(t);
  const root = await createRoot({ trustDomain: 'example.org' });
  const rootIssuer = await loadIssuer({ certPem: root.certPem, keyPem: root.keyPem });
  const inter = await createIntermediate({ root: rootIssuer, trustDomain: 'example.org' });
  const issuer = await loadIssuer({ certPem: inter.certPem, keyPem: inter.keyPem, bundlePem: root.certPem });
  const key = await generateLeafKey();
  const request = parseCsr(createCsr(key.privateKey, ID));
  const leaf = await issueLeaf(issuer, { spiffeId: request.spiffeId, ttlMs: 3_600_000, publicKey: request.publicKey });
  assert.equal(leaf.keyPem, '', 'the CA never has the private key');
  const cert = new X509Certificate(leaf.leafPem);
  assert.ok(cert.publicKey.equals(key.publicKey));
  assert.equal(cert.subjectAltName, `URI:${ID}`);
  await writeFile(join(dir, 'bundle.pem'), root.certPem);
  await writeFile(join(dir, 'cert.pem'), leaf.certPem);
  const { stdout } = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'bundle.pem', '-untrusted', 'cert.pem', 'cert.pem'], { cwd: dir });
  assert.match(stdout, /cert\.pem: OK/);
});
