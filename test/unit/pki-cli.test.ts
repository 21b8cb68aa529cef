import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caCommand } from '../../src/cli/ca.js';
import { splitPemCertificates } from '../../src/pki/pem.js';
import { certificateInfo, leafMatchesKey, verifyChain } from '../../src/pki/verify.js';
import { x509 } from './x509-lib.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ca(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await caCommand(argv, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

const posix = process.platform !== 'win32';

const base = await mkdtemp(join(tmpdir(), 'weft-ca-cli-'));
test.after(() => rm(base, { recursive: true, force: true }));

const caDir = join(base, 'ca');
const dcDir = join(base, 'dc2');
const svcDir = join(base, 'svc');

test('weft ca init writes a root, an intermediate and the bundle', async () => {
  const r = await ca('init', '--out', caDir, '--trust-domain', 'example.org', '--intermediate-ttl', '720h');
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['root.pem', 'root.key', 'intermediate.pem', 'intermediate.key', 'bundle.pem']) {
    assert.match(r.stdout, new RegExp(f.replace('.', '\\.')), `mentions ${f}`);
  }
  if (posix) {
    assert.equal(await mode(join(caDir, 'root.key')), 0o600);
    assert.equal(await mode(join(caDir, 'intermediate.key')), 0o600);
  }
  const rootPem = await readFile(join(caDir, 'root.pem'), 'utf8');
  assert.equal(await readFile(join(caDir, 'bundle.pem'), 'utf8'), rootPem);
  const inter = certificateInfo(await readFile(join(caDir, 'intermediate.pem'), 'utf8'));
  const days = (inter.notAfter.getTime() - inter.notBefore.getTime()) / 86_400_000;
  assert.ok(Math.abs(days - 30) < 0.01, `intermediate lifetime ${days} days`);
  assert.ok(verifyChain({ certPems: [await readFile(join(caDir, 'intermediate.pem'), 'utf8')], bundlePems: [rootPem] }).ok);
});

test('weft ca init refuses to overwrite keys unless --force', async () => {
  const before = await readFile(join(caDir, 'root.key'), 'utf8');
  const r = await ca('init', '--out', caDir, '--trust-domain', 'example.org');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /root\.key" already exists.*--force/);
  assert.equal(await readFile(join(caDir, 'root.key'), 'utf8'), before);

  const other = join(base, 'forced');
  assert.equal((await ca('init', '--out', other, '--trust-domain', 'example.org')).code, 0);
  const first = await readFile(join(other, 'root.key'), 'utf8');
  const forced = await ca('init', '--out', other, '--trust-domain', 'example.org', '--force');
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(await readFile(join(other, 'root.key'), 'utf8'), first);
  if (posix) assert.equal(await mode(join(other, 'root.key')), 0o600);
});

test('weft ca intermediate signs a new intermediate with the root', async () => {
  const r = await ca('intermediate', '--root', caDir, '--out', dcDir, '--ttl', '48h');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /trust domain example\.org/);
  if (posix) assert.equal(await mode(join(dcDir, 'intermediate.key')), 0o600);
  const rootPem = await readFile(join(caDir, 'root.pem'), 'utf8');
  assert.equal(await readFile(join(dcDir, 'bundle.pem'), 'utf8'), rootPem);
  const interPem = await readFile(join(dcDir, 'intermediate.pem'), 'utf8');
  assert.equal(splitPemCertificates(interPem).length, 1);
  assert.ok(leafMatchesKey(interPem, await readFile(join(dcDir, 'intermediate.key'), 'utf8')));
  assert.ok(verifyChain({ certPems: [interPem], bundlePems: [rootPem] }).ok);
  const again = await ca('intermediate', '--root', caDir, '--out', dcDir);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /--force/);
});

test('weft ca intermediate --no-name-constraint leaves the constraint out', async () => {
  const dir = join(base, 'unconstrained');
  const r = await ca('intermediate', '--root', caDir, '--out', dir, '--no-name-constraint');
  assert.equal(r.code, 0, r.stderr);
  const cert = new x509.X509Certificate(await readFile(join(dir, 'intermediate.pem'), 'utf8'));
  assert.equal(cert.getExtension('2.5.29.30'), null);
  assert.deepEqual(certificateInfo(cert.toString('pem')).spiffeIds, ['spiffe://example.org']);
  const constrained = new x509.X509Certificate(await readFile(join(dcDir, 'intermediate.pem'), 'utf8'));
  assert.equal(constrained.getExtension('2.5.29.30')?.critical, true);
});

test('weft ca issue writes cert.pem (leaf + chain), key.pem (0600) and bundle.pem', async () => {
  const r = await ca('issue', '--issuer', dcDir, '--service', 'web', '--namespace', 'shop', '--ttl', '1h', '--out', svcDir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Issued spiffe:\/\/example\.org\/ns\/shop\/svc\/web/);
  const certPem = await readFile(join(svcDir, 'cert.pem'), 'utf8');
  const keyPem = await readFile(join(svcDir, 'key.pem'), 'utf8');
  if (posix) assert.equal(await mode(join(svcDir, 'key.pem')), 0o600);
  const blocks = splitPemCertificates(certPem);
  assert.equal(blocks.length, 2);
  assert.equal(blocks[1], await readFile(join(dcDir, 'intermediate.pem'), 'utf8'));
  const info = certificateInfo(certPem);
  assert.deepEqual(info.spiffeIds, ['spiffe://example.org/ns/shop/svc/web']);
  assert.ok(Math.abs(info.notAfter.getTime() - info.notBefore.getTime() - 3_600_000 - 30_000) <= 1000);
  assert.ok(leafMatchesKey(certPem, keyPem));
  const bundlePem = await readFile(join(svcDir, 'bundle.pem'), 'utf8');
  assert.ok(verifyChain({ certPems: [certPem], bundlePems: [bundlePem] }).ok);

  // Re-issuing into the same directory replaces the files (renewal).
  assert.equal((await ca('issue', '--issuer', dcDir, '--service', 'web', '--namespace', 'shop', '--out', svcDir)).code, 0);
  assert.notEqual(await readFile(join(svcDir, 'key.pem'), 'utf8'), keyPem);
});

test('weft ca issue refuses a trust domain the issuer does not sign for', async () => {
  const r = await ca('issue', '--issuer', caDir, '--service', 'web', '--trust-domain', 'other.org', '--out', join(base, 'x'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /WEFT_E_TRUST_DOMAIN_MISMATCH/);
});

test('weft ca inspect: exit 0 against its own bundle, 1 against a foreign one', async () => {
  const certFile = join(svcDir, 'cert.pem');
  const ok = await ca('inspect', certFile);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /spiffe id\s+spiffe:\/\/example\.org\/ns\/shop\/svc\/web/);
  assert.match(ok.stdout, /not after .*\(expires in 23h \d+m\)/);
  assert.match(ok.stdout, /verifies against bundle: yes/);
  assert.match(ok.stdout, /\[1\] O=weft, OU=example\.org, CN=weft intermediate CA [0-9a-f]{8} \(CA\)/);

  const foreignDir = join(base, 'foreign');
  assert.equal((await ca('init', '--out', foreignDir, '--trust-domain', 'example.org')).code, 0);
  const bad = await ca('inspect', certFile, '--bundle', join(foreignDir, 'bundle.pem'));
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /verifies against bundle: no \(/);

  const json = await ca('inspect', certFile, '--json', '--bundle', join(foreignDir, 'bundle.pem'));
  assert.equal(json.code, 1);
  const parsed = JSON.parse(json.stdout) as {
    certificates: Array<{ spiffeIds: string[]; notAfter: string }>;
    verification: { ok: boolean; reason?: string };
    expired: boolean;
  };
  assert.deepEqual(parsed.certificates[0]!.spiffeIds, ['spiffe://example.org/ns/shop/svc/web']);
  assert.equal(parsed.verification.ok, false);
  assert.equal(typeof parsed.verification.reason, 'string');
  assert.equal(parsed.expired, false);

  const lone = join(base, 'lone.pem');
  await writeFile(lone, await readFile(certFile, 'utf8'));
  const unchecked = await ca('inspect', lone);
  assert.equal(unchecked.code, 0);
  assert.match(unchecked.stdout, /not checked/);
});

test('weft ca usage errors name the problem and exit 2', async () => {
  const unknown = await ca('init', '--out', join(base, 'u'), '--trust-domain', 'example.org', '--bogus');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown flag --bogus/);

  const missing = await ca('init', '--out', join(base, 'u'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--trust-domain is required/);

  const noValue = await ca('issue', '--issuer');
  assert.equal(noValue.code, 2);
  assert.match(noValue.stderr, /--issuer needs a value/);

  const badTtl = await ca('issue', '--issuer', dcDir, '--service', 'web', '--out', join(base, 'u'), '--ttl', 'soon');
  assert.equal(badTtl.code, 2);
  assert.match(badTtl.stderr, /--ttl: "soon" is not a duration/);

  const badTd = await ca('init', '--out', join(base, 'u'), '--trust-domain', 'Example.org');
  assert.equal(badTd.code, 1);
  assert.match(badTd.stderr, /lowercase/);

  const sub = await ca('frobnicate');
  assert.equal(sub.code, 2);
  assert.match(sub.stderr, /unknown command "frobnicate"/);

  const none = await ca();
  assert.equal(none.code, 2);

  const help = await ca('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /weft ca init --out DIR --trust-domain TD/);
  assert.equal((await ca('issue', '--help')).code, 0);

  const missingFile = await ca('inspect', join(base, 'nope.pem'));
  assert.equal(missingFile.code, 1);
  assert.match(missingFile.stderr, /nope\.pem": no such file/);

  const noIssuer = await ca('issue', '--issuer', join(base, 'empty'), '--service', 'web', '--out', join(base, 'u'));
  assert.equal(noIssuer.code, 1);
  assert.match(noIssuer.stderr, /is not a weft CA directory/);
});
