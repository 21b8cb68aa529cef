/**
 * Interoperability with the real `openssl` binary: weft's chains must pass
 * `openssl verify -x509_strict`, and intermediates made with plain openssl commands (as
 * Vault or a corporate CA hands them over) must work as weft issuers. These are the exact
 * commands docs/pki.md shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createIntermediate, createRoot } from '../../src/pki/ca.js';
import { rawCertificateNames } from '../../src/pki/der.js';
import { issueLeaf, loadIssuer, type Issuer } from '../../src/pki/issuer.js';
import { certificateInfo, verifyChain } from '../../src/pki/verify.js';

const run = promisify(execFile);
const TD = 'example.org';
const SPIFFE_ID = 'spiffe://example.org/ns/default/svc/web';
const HOUR = 3_600_000;

const opensslVersion = await run('openssl', ['version']).then(
  (r) => r.stdout.trim(),
  () => null,
);
const skip = opensslVersion === null ? 'openssl is not installed' : false;

async function openssl(args: string[], cwd: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('openssl', args, { cwd });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}

/** `openssl verify -x509_strict -purpose P -CAfile bundle.pem -untrusted intermediate.pem leaf.pem` for both TLS purposes. */
async function assertOpensslVerifies(dir: string, files: { bundle: string; intermediate: string; leaf: string }): Promise<void> {
  for (const purpose of ['sslserver', 'sslclient']) {
    const r = await openssl(
      ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', files.bundle, '-untrusted', files.intermediate, files.leaf],
      dir,
    );
    assert.ok(r.ok, `openssl verify -purpose ${purpose} failed:\n${r.output}`);
    assert.match(r.output, new RegExp(`${files.leaf}: OK`), r.output);
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-openssl-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function weftRoot(dir: string): Promise<Issuer> {
  const root = await createRoot({ trustDomain: TD });
  await writeFile(join(dir, 'root.pem'), root.certPem);
  await writeFile(join(dir, 'root.key'), root.keyPem, { mode: 0o600 });
  return loadIssuer({ certPem: root.certPem, keyPem: root.keyPem });
}

const EXTFILE = [
  'basicConstraints=critical,CA:true,pathlen:0',
  'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid',
  '',
].join('\n');

/**
 * Makes an intermediate with plain openssl, signed by the weft root in `dir`:
 * key (per `keyCommand`), CSR, and `openssl x509 -req` with the CA extensions.
 */
async function opensslIntermediate(dir: string, name: string, keyCommand: string[]): Promise<{ certPem: string; keyPem: string }> {
  await writeFile(join(dir, 'intermediate-ext.cnf'), EXTFILE);
  const serial = await openssl(['rand', '-hex', '16'], dir);
  assert.ok(serial.ok, serial.output);
  const steps = [
    keyCommand,
    ['req', '-new', '-key', `${name}.key`, '-subj', `/O=Example Corp/CN=${name}`, '-out', `${name}.csr`],
    [
      'x509', '-req', '-in', `${name}.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', `0x${serial.output.trim()}`,
      '-days', '30', '-sha256', '-extfile', 'intermediate-ext.cnf', '-out', `${name}.pem`,
    ],
  ];
  for (const args of steps) {
    const r = await openssl(args, dir);
    assert.ok(r.ok, `openssl ${args.join(' ')} failed:\n${r.output}`);
  }
  const strict = await openssl(['verify', '-x509_strict', '-CAfile', 'root.pem', `${name}.pem`], dir);
  assert.ok(strict.ok, strict.output);
  return { certPem: await readFile(join(dir, `${name}.pem`), 'utf8'), keyPem: await readFile(join(dir, `${name}.key`), 'utf8') };
}

test('openssl verifies weft chains for TLS server and client use', { skip }, () =>
  withDir(async (dir) => {
    const root = await weftRoot(dir);
    const inter = await createIntermediate({ root, trustDomain: TD });
    const issuer = await loadIssuer({ certPem: inter.certPem, keyPem: inter.keyPem, bundlePem: root.certPem });
    const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
    await writeFile(join(dir, 'bundle.pem'), root.certPem);
    await writeFile(join(dir, 'intermediate.pem'), inter.certPem);
    await writeFile(join(dir, 'leaf.pem'), leaf.leafPem);
    await writeFile(join(dir, 'cert.pem'), leaf.certPem);
    await assertOpensslVerifies(dir, { bundle: 'bundle.pem', intermediate: 'intermediate.pem', leaf: 'leaf.pem' });
    // The leaf's own file carries the chain, so `-untrusted cert.pem` works too.
    await assertOpensslVerifies(dir, { bundle: 'bundle.pem', intermediate: 'cert.pem', leaf: 'cert.pem' });
    const strictRoot = await openssl(['verify', '-x509_strict', '-CAfile', 'bundle.pem', 'bundle.pem'], dir);
    assert.ok(strictRoot.ok, strictRoot.output);
  }),
);

test('openssl enforces the intermediate name constraint on foreign trust domains', { skip }, () =>
  withDir(async (dir) => {
    const root = await weftRoot(dir);
    const inter = await createIntermediate({ root, trustDomain: TD });
    const issuer = await loadIssuer({ certPem: inter.certPem, keyPem: inter.keyPem, bundlePem: root.certPem });
    const leaf = await issueLeaf({ ...issuer, trustDomain: null }, { spiffeId: 'spiffe://evil.org/ns/default/svc/web', ttlMs: HOUR });
    await writeFile(join(dir, 'intermediate.pem'), inter.certPem);
    await writeFile(join(dir, 'leaf.pem'), leaf.leafPem);
    const r = await openssl(['verify', '-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'intermediate.pem', 'leaf.pem'], dir);
    assert.equal(r.ok, false, r.output);
    assert.match(r.output, /permitted subtree violation/);
  }),
);

const opensslKeys: Array<{ name: string; key: string[]; signature: RegExp; keyType: RegExp }> = [
  {
    name: 'EC P-256 (SEC1 key from `openssl ecparam -genkey`)',
    key: ['ecparam', '-name', 'prime256v1', '-genkey', '-out', 'vault-int.key'],
    signature: /ecdsa-with-SHA256/,
    keyType: /EC PRIVATE KEY/,
  },
  {
    name: 'EC P-384',
    key: ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', 'vault-int.key'],
    signature: /ecdsa-with-SHA384/,
    keyType: /EC PRIVATE KEY/,
  },
  {
    name: 'RSA 2048',
    key: ['genrsa', '-out', 'vault-int.key', '2048'],
    signature: /sha256WithRSAEncryption/,
    keyType: /PRIVATE KEY/,
  },
];

for (const variant of opensslKeys) {
  test(`an openssl-made intermediate works as a weft issuer: ${variant.name}`, { skip }, () =>
    withDir(async (dir) => {
      await weftRoot(dir);
      const made = await opensslIntermediate(dir, 'vault-int', variant.key);
      assert.match(made.keyPem, variant.keyType);

      const issuer = await loadIssuer({ certPem: made.certPem, keyPem: made.keyPem, bundlePem: await readFile(join(dir, 'root.pem'), 'utf8') });
      assert.equal(issuer.trustDomain, TD, 'trust domain recovered from the weft root');
      assert.equal(issuer.subject, 'O=Example Corp, CN=vault-int');
      const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: 365 * 24 * HOUR });
      assert.equal(leaf.notAfter.getTime(), issuer.notAfter.getTime(), 'clamped to the 30-day intermediate');
      assert.deepEqual(
        Buffer.from(rawCertificateNames(new X509Certificate(leaf.leafPem).raw).issuer),
        Buffer.from(rawCertificateNames(new X509Certificate(made.certPem).raw).subject),
        'issuer name copied byte for byte',
      );
      await writeFile(join(dir, 'leaf.pem'), leaf.leafPem);
      await assertOpensslVerifies(dir, { bundle: 'root.pem', intermediate: 'vault-int.pem', leaf: 'leaf.pem' });

      const text = await openssl(['x509', '-in', 'leaf.pem', '-noout', '-text'], dir);
      assert.match(text.output, variant.signature);
      assert.deepEqual(certificateInfo(leaf.certPem).spiffeIds, [SPIFFE_ID]);
      assert.ok(verifyChain({ certPems: [leaf.certPem], bundlePems: issuer.bundlePems }).ok);
    }),
  );
}

test('Vault-style bundle: intermediate followed by its root in one file, no separate bundle', { skip }, () =>
  withDir(async (dir) => {
    await weftRoot(dir);
    const made = await opensslIntermediate(dir, 'vault-int', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'vault-int.key']);
    const rootPem = await readFile(join(dir, 'root.pem'), 'utf8');
    const issuer = await loadIssuer({ certPem: made.certPem + rootPem, keyPem: made.keyPem });
    assert.equal(issuer.chainPems.length, 1);
    assert.deepEqual(issuer.bundlePems, [rootPem]);
    const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
    await writeFile(join(dir, 'cert.pem'), leaf.certPem);
    await assertOpensslVerifies(dir, { bundle: 'root.pem', intermediate: 'cert.pem', leaf: 'cert.pem' });
  }),
);
