import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWeftError } from '../../src/errors.js';
import { createIntermediate, createRoot } from '../../src/pki/ca.js';
import { rawCertificateNames } from '../../src/pki/der.js';
import { issueLeaf, loadIssuer, loadIssuerDir, type Issuer } from '../../src/pki/issuer.js';
import { generateLeafKey, importPrivateKey } from '../../src/pki/keys.js';
import { readUriNameConstraints } from '../../src/pki/name-constraints.js';
import { readPemInput, splitPemCertificates } from '../../src/pki/pem.js';
import { certificateInfo, leafMatchesKey, verifyChain } from '../../src/pki/verify.js';
import { x509 } from './x509-lib.js';

const TD = 'example.org';
const SPIFFE_ID = 'spiffe://example.org/ns/default/svc/web';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const root = await createRoot({ trustDomain: TD });
const rootIssuer = await loadIssuer({ certPem: root.certPem, keyPem: root.keyPem });
const intermediate = await createIntermediate({ root: rootIssuer, trustDomain: TD });
const issuer = await loadIssuer({ certPem: intermediate.certPem, keyPem: intermediate.keyPem, bundlePem: root.certPem });

const foreignRoot = await createRoot({ trustDomain: TD });
const foreignRootIssuer = await loadIssuer({ certPem: foreignRoot.certPem, keyPem: foreignRoot.keyPem });

function parsed(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(pem);
}

async function assertRejects(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isWeftError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('root CA profile', () => {
  const cert = parsed(root.certPem);
  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, true);
  assert.equal(bc.critical, true);
  assert.equal(bc.pathLength, undefined);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension));
  assert.deepEqual(certificateInfo(root.certPem).spiffeIds, ['spiffe://example.org']);
  assert.equal(certificateInfo(root.certPem).isCA, true);
  assert.match(root.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(rootIssuer.trustDomain, TD);
  assert.deepEqual(rootIssuer.chainPems, [], 'a root has no chain to send');
  const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365 * DAY);
  assert.ok(years > 9.99 && years < 10.01, `root lifetime ${years} years`);
});

test('intermediate CA profile', () => {
  const cert = parsed(intermediate.certPem);
  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, true);
  assert.equal(bc.pathLength, 0);
  assert.equal(bc.critical, true);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  const skid = cert.getExtension(x509.SubjectKeyIdentifierExtension)!;
  const akid = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
  assert.equal(akid.keyId, parsed(root.certPem).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
  assert.ok(skid.keyId);
  assert.deepEqual(readUriNameConstraints(new Uint8Array(cert.getExtension('2.5.29.30')!.value)), { permitted: [TD], excluded: [] });
  assert.equal(cert.getExtension('2.5.29.30')!.critical, true);
  assert.deepEqual(certificateInfo(intermediate.certPem).spiffeIds, ['spiffe://example.org']);
  assert.equal(issuer.trustDomain, TD);
  assert.deepEqual(issuer.chainPems, splitPemCertificates(intermediate.certPem));
  assert.deepEqual(issuer.bundlePems, [root.certPem]);
});

test('issued leaf follows the X.509-SVID profile', async () => {
  const now = new Date();
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: DAY, now });
  const cert = parsed(leaf.leafPem);

  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: SPIFFE_ID }], 'exactly one SAN: the URI');
  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, false);
  assert.equal(bc.critical, true);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature, 'digitalSignature only');
  assert.equal(ku.critical, true);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)!;
  assert.deepEqual([...eku.usages].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort());
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension));
  assert.equal(
    cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId,
    parsed(intermediate.certPem).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
  );
  assert.equal(cert.subject, 'O=weft, CN=web');

  const node = new X509Certificate(leaf.leafPem);
  assert.equal(node.publicKey.asymmetricKeyType, 'ec');
  assert.equal(node.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal((cert.signatureAlgorithm as unknown as { name: string }).name, 'ECDSA');
  assert.equal(node.ca, false);

  // Serial: 16 random bytes, positive, non-zero, reported as lowercase hex.
  assert.match(leaf.serial, /^[0-7][0-9a-f]{31}$/);
  assert.notEqual(BigInt(`0x${leaf.serial}`), 0n);
  assert.equal(node.serialNumber.toLowerCase(), leaf.serial);
  assert.equal(certificateInfo(leaf.leafPem).serial, leaf.serial);

  const seconds = Math.floor(now.getTime() / 1000) * 1000;
  assert.equal(leaf.notBefore.getTime(), seconds - 30_000);
  assert.equal(leaf.notAfter.getTime(), seconds + DAY);
  assert.equal(cert.notBefore.getTime(), leaf.notBefore.getTime());
  assert.equal(cert.notAfter.getTime(), leaf.notAfter.getTime());

  assert.deepEqual(splitPemCertificates(leaf.certPem), [leaf.leafPem, ...issuer.chainPems], 'leaf + chain, no root');
  assert.ok(leafMatchesKey(leaf.leafPem, leaf.keyPem));
  assert.ok(leafMatchesKey(leaf.certPem, leaf.keyPem));
  assert.ok(!leafMatchesKey(leaf.leafPem, intermediate.keyPem));
  assert.ok(!leafMatchesKey(leaf.leafPem, 'not a key'));
  assert.equal(leaf.spiffeId, SPIFFE_ID);

  const info = certificateInfo(leaf.certPem);
  assert.deepEqual(info.spiffeIds, [SPIFFE_ID]);
  assert.equal(info.isCA, false);
  assert.equal(info.keyType, 'EC P-256');
  assert.match(info.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test('leaf issuer name is byte-identical to the issuer subject (Go builds chains by raw name)', async () => {
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
  const leafNames = rawCertificateNames(new X509Certificate(leaf.leafPem).raw);
  const issuerNames = rawCertificateNames(new X509Certificate(intermediate.certPem).raw);
  assert.deepEqual(Buffer.from(leafNames.issuer), Buffer.from(issuerNames.subject));
});

test('leaf lifetime is clamped to the issuer', async () => {
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: 5 * 365 * DAY });
  assert.equal(leaf.notAfter.getTime(), issuer.notAfter.getTime());
  assert.ok(verifyChain({ certPems: [leaf.certPem], bundlePems: issuer.bundlePems }).ok);
});

test('intermediate lifetime is clamped to the root', async () => {
  const shortRoot = await createRoot({ trustDomain: TD, ttlMs: 2 * DAY });
  const shortIssuer = await loadIssuer({ certPem: shortRoot.certPem, keyPem: shortRoot.keyPem });
  const inter = await createIntermediate({ root: shortIssuer, trustDomain: TD });
  assert.equal(certificateInfo(inter.certPem).notAfter.getTime(), shortIssuer.notAfter.getTime());
});

test('issueLeaf with a caller-supplied public key returns no private key', async () => {
  const key = await generateLeafKey();
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR, publicKey: key.publicKey });
  assert.equal(leaf.keyPem, '');
  assert.ok(leafMatchesKey(leaf.leafPem, key.keyPem));
});

test('issueLeaf refuses IDs outside the trust domain, without a path, or with a bad ttl', async () => {
  await assertRejects(
    issueLeaf(issuer, { spiffeId: 'spiffe://other.org/ns/default/svc/web', ttlMs: HOUR }),
    'WEFT_E_TRUST_DOMAIN_MISMATCH',
    /trust domain "other\.org".*signs for "example\.org"/,
  );
  await assertRejects(issueLeaf(issuer, { spiffeId: 'spiffe://example.org', ttlMs: HOUR }), 'WEFT_E_SPIFFE_ID', /give a path/);
  await assertRejects(issueLeaf(issuer, { spiffeId: 'spiffe://example.org/web/', ttlMs: HOUR }), 'WEFT_E_SPIFFE_ID');
  await assertRejects(issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: 0 }), 'WEFT_E_TTL');
});

test('verifyChain accepts the issued chain and reports the path', async () => {
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
  const result = verifyChain({ certPems: [leaf.certPem], bundlePems: [root.certPem] });
  assert.deepEqual(result, {
    ok: true,
    chain: ['O=weft, CN=web', issuer.subject, rootIssuer.subject],
  });
  // Also with separate PEM entries, and a bundle holding several roots.
  const separate = verifyChain({
    certPems: [leaf.leafPem, intermediate.certPem],
    bundlePems: [foreignRoot.certPem, root.certPem],
  });
  assert.equal(separate.ok, true);
});

test('verifyChain rejects a foreign bundle, a missing intermediate, and expiry', async () => {
  const now = new Date();
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR, now });

  const foreign = verifyChain({ certPems: [leaf.certPem], bundlePems: [foreignRoot.certPem] });
  assert.equal(foreign.ok, false);
  assert.match(!foreign.ok ? foreign.reason : '', /signature|nothing in the chain/);

  const otherTd = await createRoot({ trustDomain: 'other.org' });
  const unrelated = verifyChain({ certPems: [leaf.certPem], bundlePems: [otherTd.certPem] });
  assert.equal(unrelated.ok, false);
  assert.match(!unrelated.ok ? unrelated.reason : '', /nothing in the chain or the trust bundle issued "O=weft, OU=example\.org/);

  const noIntermediate = verifyChain({ certPems: [leaf.leafPem], bundlePems: [root.certPem] });
  assert.equal(noIntermediate.ok, false);
  assert.match(!noIntermediate.ok ? noIntermediate.reason : '', /nothing in the chain or the trust bundle issued "O=weft, CN=web"/);

  const later = verifyChain({ certPems: [leaf.certPem], bundlePems: [root.certPem], now: new Date(now.getTime() + 2 * HOUR) });
  assert.equal(later.ok, false);
  assert.match(!later.ok ? later.reason : '', /"O=weft, CN=web" expired at/);

  const earlier = verifyChain({ certPems: [leaf.certPem], bundlePems: [root.certPem], now: new Date(now.getTime() - HOUR) });
  assert.equal(earlier.ok, false);
  assert.match(!earlier.ok ? earlier.reason : '', /not valid until/);

  assert.deepEqual(verifyChain({ certPems: [leaf.certPem], bundlePems: [] }), { ok: false, reason: 'the trust bundle is empty' });
  const garbage = verifyChain({ certPems: ['nope'], bundlePems: [root.certPem] });
  assert.equal(garbage.ok, false);
});

test('verifyChain enforces the intermediate name constraint', async () => {
  // Pretend the issuer did not know its trust domain, so issueLeaf does not stop us.
  const unconstrained: Issuer = { ...issuer, trustDomain: null };
  const leaf = await issueLeaf(unconstrained, { spiffeId: 'spiffe://other.org/ns/default/svc/web', ttlMs: HOUR });
  const result = verifyChain({ certPems: [leaf.certPem], bundlePems: [root.certPem] });
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.reason : '', /name-constrained.*spiffe:\/\/other\.org/);
});

test('verifyChain rejects a leaf posing as an issuer (CA flag and pathlen)', async () => {
  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
  // Sign a certificate with the leaf's key, as if the leaf were a CA.
  const fakeIssuer: Issuer = {
    ...issuer,
    certPem: leaf.leafPem,
    chainPems: [leaf.leafPem, ...issuer.chainPems],
    signingKey: (await importPrivateKey(leaf.keyPem)).key,
  };
  const child = await issueLeaf(fakeIssuer, { spiffeId: 'spiffe://example.org/ns/default/svc/evil', ttlMs: HOUR });
  const result = verifyChain({ certPems: [child.certPem], bundlePems: [root.certPem] });
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.reason : '', /not a CA/);
});

test('loadIssuer: Vault-style certificate file (intermediate + root) without a bundle', async () => {
  const loaded = await loadIssuer({ certPem: intermediate.certPem + root.certPem, keyPem: intermediate.keyPem });
  assert.deepEqual(loaded.bundlePems, [root.certPem]);
  assert.deepEqual(loaded.chainPems, [intermediate.certPem]);
  assert.equal(loaded.trustDomain, TD);
  assert.equal(loaded.subject, issuer.subject);
});

test('loadIssuer errors carry the right code and name the file', async () => {
  const other = await createIntermediate({ root: rootIssuer, trustDomain: TD });
  await assertRejects(
    loadIssuer({
      certPem: intermediate.certPem,
      keyPem: other.keyPem,
      bundlePem: root.certPem,
      sources: { cert: '/etc/weft/intermediate.pem', key: '/etc/weft/intermediate.key' },
    }),
    'WEFT_E_ISSUER_KEY_MISMATCH',
    /the issuer key \(\/etc\/weft\/intermediate\.key\) is not the private key of the issuer certificate \(\/etc\/weft\/intermediate\.pem\)/,
  );

  const leaf = await issueLeaf(issuer, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
  await assertRejects(
    loadIssuer({ certPem: leaf.certPem, keyPem: leaf.keyPem, bundlePem: root.certPem, sources: { cert: 'cert.pem' } }),
    'WEFT_E_ISSUER_NOT_CA',
    /the issuer certificate \(cert\.pem\).*is not a CA certificate/,
  );

  const past = new Date(Date.now() - 2 * 365 * DAY);
  const oldRoot = await createRoot({ trustDomain: TD, now: past });
  const oldRootIssuer = await loadIssuer({ certPem: oldRoot.certPem, keyPem: oldRoot.keyPem });
  const expired = await createIntermediate({ root: oldRootIssuer, trustDomain: TD, ttlMs: HOUR, now: past });
  await assertRejects(
    loadIssuer({ certPem: expired.certPem, keyPem: expired.keyPem, bundlePem: oldRoot.certPem }),
    'WEFT_E_ISSUER_EXPIRED',
    /expired at .*weft ca intermediate/,
  );

  await assertRejects(
    loadIssuer({ certPem: intermediate.certPem, keyPem: intermediate.keyPem, bundlePem: foreignRoot.certPem, sources: { bundle: 'bundle.pem' } }),
    'WEFT_E_ISSUER_UNTRUSTED',
    /does not chain to the trust bundle \(bundle\.pem\)/,
  );

  await assertRejects(
    loadIssuer({ certPem: intermediate.certPem, keyPem: intermediate.keyPem }),
    'WEFT_E_TRUST_BUNDLE_REQUIRED',
    /a trust bundle is required/,
  );

  await assertRejects(loadIssuer({ certPem: 'garbage', keyPem: intermediate.keyPem }), 'WEFT_E_PEM');
  await assertRejects(loadIssuer({ certPem: intermediate.certPem, keyPem: 'garbage', bundlePem: root.certPem }), 'WEFT_E_KEY');
});

test('createIntermediate refuses an issuer that may only sign leaves', async () => {
  await assertRejects(createIntermediate({ root: issuer, trustDomain: TD }), 'WEFT_E_ISSUER_PATHLEN', /root CA/);
});

test('an intermediate made from a foreign root is only trusted by that root', async () => {
  const inter = await createIntermediate({ root: foreignRootIssuer, trustDomain: TD });
  const loaded = await loadIssuer({ certPem: inter.certPem, keyPem: inter.keyPem, bundlePem: foreignRoot.certPem });
  const leaf = await issueLeaf(loaded, { spiffeId: SPIFFE_ID, ttlMs: HOUR });
  assert.equal(verifyChain({ certPems: [leaf.certPem], bundlePems: [foreignRoot.certPem] }).ok, true);
  assert.equal(verifyChain({ certPems: [leaf.certPem], bundlePems: [root.certPem] }).ok, false);
});

test('importPrivateKey accepts PKCS#8, SEC1 and PKCS#1 and picks the signing algorithm', async () => {
  const ec256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sec1 = ec256.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  assert.match(sec1, /BEGIN EC PRIVATE KEY/);
  assert.deepEqual((await importPrivateKey(sec1)).algorithm, { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' });
  // `openssl ecparam -genkey` writes an EC PARAMETERS block first.
  const withParams = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${sec1}`;
  assert.equal((await importPrivateKey(withParams)).algorithm.name, 'ECDSA');
  const p384 = ec384.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  assert.deepEqual((await importPrivateKey(p384)).algorithm, { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' });
  const pkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
  assert.deepEqual((await importPrivateKey(pkcs1)).algorithm, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
  const rsa8 = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const imported = await importPrivateKey(rsa8);
  assert.equal(imported.algorithm.name, 'RSASSA-PKCS1-v1_5');
  assert.equal(imported.key.type, 'private');

  const encrypted = ec256.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
  await assertRejects(importPrivateKey(encrypted, 'key.pem'), 'WEFT_E_KEY', /key\.pem is encrypted/);
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await assertRejects(importPrivateKey(ed), 'WEFT_E_KEY', /ed25519 key/);
  await assertRejects(importPrivateKey(root.certPem), 'WEFT_E_KEY', /no PEM private key/);
});

test('generateLeafKey makes a P-256 key pair and PKCS#8 PEM', async () => {
  const key = await generateLeafKey();
  assert.equal(key.publicKey.asymmetricKeyType, 'ec');
  assert.equal(key.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.match(key.keyPem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
  const data = new TextEncoder().encode('hello');
  const sig = sign('sha256', data, createPrivateKey(key.keyPem));
  assert.ok(verify('sha256', data, key.publicKey, sig));
});

test('splitPemCertificates and readPemInput', async () => {
  const mixed = `subject=foo\r\n${root.certPem.replace(/\n/g, '\r\n')}junk\n${intermediate.keyPem}${intermediate.certPem}`;
  assert.deepEqual(splitPemCertificates(mixed), [root.certPem, intermediate.certPem]);
  assert.throws(
    () => splitPemCertificates(intermediate.keyPem, '"key.pem"'),
    (err: unknown) => isWeftError(err, 'WEFT_E_PEM') && /"key\.pem" contains no PEM certificate/.test(err.message),
  );

  const dir = await mkdtemp(join(tmpdir(), 'weft-pem-'));
  try {
    assert.equal(await readPemInput(root.certPem), root.certPem);
    const file = join(dir, 'root.pem');
    await writeFile(file, root.certPem);
    assert.equal(await readPemInput(file), root.certPem);
    const missing = join(dir, 'missing.pem');
    await assertRejects(readPemInput(missing), 'WEFT_E_PEM_FILE', new RegExp(`"${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": no such file`));
    await writeFile(join(dir, 'empty.pem'), 'hello');
    await assertRejects(readPemInput(join(dir, 'empty.pem')), 'WEFT_E_PEM_FILE', /contains no PEM data/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadIssuerDir reads an init directory, or a root-only directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-issuer-'));
  try {
    await assertRejects(loadIssuerDir(dir), 'WEFT_E_ISSUER_DIR', /weft ca init/);
    await writeFile(join(dir, 'root.pem'), root.certPem);
    await writeFile(join(dir, 'root.key'), root.keyPem);
    const fromRoot = await loadIssuerDir(dir);
    assert.equal(fromRoot.subject, rootIssuer.subject);
    await assertRejects(loadIssuerDir(dir, { role: 'intermediate' }), 'WEFT_E_ISSUER_DIR', /intermediate\.pem and intermediate\.key/);

    await writeFile(join(dir, 'intermediate.pem'), intermediate.certPem);
    await writeFile(join(dir, 'intermediate.key'), intermediate.keyPem);
    const auto = await loadIssuerDir(dir);
    assert.equal(auto.subject, issuer.subject, 'prefers the intermediate');
    assert.deepEqual(auto.bundlePems, [root.certPem], 'falls back to root.pem as the bundle');
    assert.equal((await loadIssuerDir(dir, { role: 'root' })).subject, rootIssuer.subject);

    await writeFile(join(dir, 'bundle.pem'), foreignRoot.certPem);
    await assertRejects(loadIssuerDir(dir), 'WEFT_E_ISSUER_UNTRUSTED', new RegExp(`\\(${join(dir, 'bundle.pem').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
