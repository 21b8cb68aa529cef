import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig, deepMerge } from '../../src/config/load.js';
import { sidecarConfigSchema } from '../../src/config/sidecar-schema.js';
import { ConfigError } from '../../src/config/problems.js';
import { parseHostPort } from '../../src/config/address.js';
import { parseDuration, formatDuration } from '../../src/duration.js';
import { parseUpstreamFlag, sidecarOverrides } from '../../src/cli/sidecar-flags.js';
import { isWeftError } from '../../src/errors.js';

const minimal = { service: 'api', identity: { issuer: { dir: './ca' } } };

function problemsOf(fn: () => unknown): ConfigError['problems'] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

async function withFile(text: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-config-'));
  try {
    const file = join(dir, 'sidecar.yaml');
    await writeFile(file, text);
    await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a minimal config gets the documented defaults', () => {
  const c = validateConfig(sidecarConfigSchema, minimal);
  assert.equal(c.namespace, 'default');
  assert.equal(c.identity?.ttl, 24 * 3600_000);
  assert.deepEqual(c.admin.listen, { host: '127.0.0.1', port: 15000 });
  assert.equal(c.limits.maxHeaders, 100);
  assert.equal(c.limits.maxHeaderBytes, 16384);
  assert.equal(c.limits.headerTimeout, 10_000);
  assert.equal(c.drainTimeout, 15_000);
  assert.deepEqual(c.upstreams, []);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.limits), 'validated config is frozen');
});

test('inbound and upstream defaults: protocol auto (detected), strict, identity derived later', () => {
  const c = validateConfig(sidecarConfigSchema, {
    ...minimal,
    inbound: { listen: '0.0.0.0:8443', app: '127.0.0.1:8080' },
    upstreams: [{ name: 'db', listen: '127.0.0.1:5433', endpoints: ['198.18.0.2:5432'], protocol: 'tcp' }],
  });
  assert.equal(c.inbound?.protocol, 'auto');
  assert.equal(c.inbound?.mtls, 'strict');
  assert.equal(c.upstreams[0]?.protocol, 'tcp');
  assert.deepEqual(c.upstreams[0]?.endpoints, [{ address: { host: '198.18.0.2', port: 5432 }, metadata: {}, weight: 1 }]);
});

test('inbound.authorization takes AuthorizationPolicy rules; strictDryRun needs mtls strict; tcp rules cannot have `to`', () => {
  const inbound = { listen: '0.0.0.0:8443', app: '127.0.0.1:8080' };
  const c = validateConfig(sidecarConfigSchema, {
    ...minimal,
    inbound: { ...inbound, strictDryRun: true, authorization: { rules: [{ action: 'deny', from: [{ service: 'web' }], to: { paths: [{ prefix: '/admin' }] } }] } },
  });
  assert.equal(c.inbound?.strictDryRun, true);
  assert.equal(c.inbound?.authorization?.defaultAction, 'allow');
  assert.equal(c.inbound?.authorization?.rules[0]?.action, 'deny');
  assert.equal(validateConfig(sidecarConfigSchema, { ...minimal, inbound }).inbound?.strictDryRun, false);

  const dryRun = problemsOf(() => validateConfig(sidecarConfigSchema, { ...minimal, inbound: { ...inbound, mtls: 'permissive', strictDryRun: true } }));
  assert.deepEqual(dryRun.map((p) => p.path), ['inbound.strictDryRun']);
  assert.match(dryRun[0]!.message, /set mtls: strict/);

  const rules = [{ action: 'allow', from: ['*'] }, { action: 'allow', from: ['*'], to: { methods: ['GET'] } }];
  const tcp = problemsOf(() => validateConfig(sidecarConfigSchema, { ...minimal, inbound: { ...inbound, protocol: 'tcp', authorization: { rules } } }));
  assert.deepEqual(tcp.map((p) => p.path), ['inbound.authorization.rules.1.to']);
  assert.match(tcp[0]!.message, /need protocol: http/);

  const bad = problemsOf(() => validateConfig(sidecarConfigSchema, { ...minimal, inbound: { ...inbound, authorization: { defaultAction: 'block', rules: [{ action: 'permit', from: [] }] } } }));
  const paths = bad.map((p) => p.path);
  for (const path of ['inbound.authorization.defaultAction', 'inbound.authorization.rules.0.action', 'inbound.authorization.rules.0.from']) {
    assert.ok(paths.includes(path), `missing problem at ${path}: ${JSON.stringify(bad)}`);
  }
});

test('every problem is reported at once, with its path and the value given', () => {
  const problems = problemsOf(() =>
    validateConfig(sidecarConfigSchema, {
      service: 'API_Server',
      identity: {},
      inbound: { listen: 'nowhere', app: '127.0.0.1:8080', mtls: 'strictt' },
      limits: { maxHeaders: 'many' },
    }),
  );
  const paths = problems.map((p) => p.path);
  for (const path of ['service', 'identity', 'inbound.listen', 'inbound.mtls', 'limits.maxHeaders']) {
    assert.ok(paths.includes(path), `missing problem at ${path}: ${JSON.stringify(problems)}`);
  }
  const mtls = problems.find((p) => p.path === 'inbound.mtls')!;
  assert.match(mtls.message, /strict or permissive/);
  assert.match(mtls.message, /got "strictt"/);
  assert.match(problems.find((p) => p.path === 'identity')!.message, /identity\.issuer|identity\.files/);
});

test('unknown fields are named, with file:line:column from the YAML', async () => {
  await withFile('service: api\nidentity:\n  issuer: { dir: ./ca }\ninbound:\n  listen: 0.0.0.0:8443\n  app: 127.0.0.1:8080\n  lissten: x\n', async (file) => {
    await assert.rejects(loadConfig(sidecarConfigSchema, { file }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 1);
      assert.equal(err.problems[0]!.path, 'inbound.lissten');
      assert.equal(err.problems[0]!.source, `${file}:7:3`);
      assert.match(err.message, /unknown field "lissten"/);
      return true;
    });
  });
});

test('a wrong value points at the line of the value', async () => {
  await withFile('service: api\nidentity:\n  issuer: { dir: ./ca }\n  ttl: forever\n', async (file) => {
    await assert.rejects(loadConfig(sidecarConfigSchema, { file }), (err: ConfigError) => {
      assert.equal(err.problems[0]!.source, `${file}:4:8`);
      assert.match(err.problems[0]!.message, /not a duration/);
      return true;
    });
  });
});

test('YAML syntax errors and missing files are config errors that say what to do', async () => {
  await withFile('service: [api\n', async (file) => {
    await assert.rejects(loadConfig(sidecarConfigSchema, { file }), (err: ConfigError) => {
      assert.match(err.message, /YAML syntax/);
      assert.match(err.problems[0]!.source ?? '', /sidecar\.yaml:\d+:\d+/);
      return true;
    });
  });
  await assert.rejects(loadConfig(sidecarConfigSchema, { file: '/nonexistent/weft.yaml' }), /cannot read the config file: ENOENT; check the path/);
});

test('only one identity source; issuer needs dir or cert+key', () => {
  const both = problemsOf(() => validateConfig(sidecarConfigSchema, { service: 'a', identity: { issuer: { dir: 'x' }, files: { cert: 'c', key: 'k', bundle: 'b' } } }));
  assert.match(both[0]!.message, /only one of identity\.issuer and identity\.files/);
  const half = problemsOf(() => validateConfig(sidecarConfigSchema, { service: 'a', identity: { issuer: { cert: 'c' } } }));
  assert.equal(half[0]!.path, 'identity.issuer');
  assert.match(half[0]!.message, /both cert and key/);
});

test('the admin endpoint and upstream listeners must stay on loopback', () => {
  const p = problemsOf(() => validateConfig(sidecarConfigSchema, { ...minimal, admin: { listen: '0.0.0.0:15000' } }));
  assert.equal(p[0]!.path, 'admin.listen');
  assert.match(p[0]!.message, /loopback/);
  // An upstream listener takes plaintext and calls out with this service's identity.
  const u = problemsOf(() => validateConfig(sidecarConfigSchema, { ...minimal, upstreams: [{ name: 'api', listen: ':9001', endpoints: ['198.18.0.2:8443'] }] }));
  assert.equal(u[0]!.path, 'upstreams.0.listen');
  assert.match(u[0]!.message, /must be on loopback/);
});

test('listen addresses and upstream names must be unique; SPIFFE IDs must be valid', () => {
  const p = problemsOf(() =>
    validateConfig(sidecarConfigSchema, {
      ...minimal,
      inbound: { listen: '127.0.0.1:9001', app: '127.0.0.1:8080', allow: ['spiffe://Example.org/x'] },
      upstreams: [
        { name: 'api', listen: '127.0.0.1:9001', endpoints: ['198.18.0.2:8443'] },
        { name: 'api', listen: '127.0.0.1:9002', endpoints: [] },
      ],
    }),
  );
  const byPath = new Map(p.map((x) => [x.path, x.message]));
  assert.match(byPath.get('upstreams.0.listen') ?? '', /already used by inbound\.listen/);
  assert.match(byPath.get('upstreams.1.name') ?? '', /listed twice/);
  assert.match(byPath.get('upstreams.1.endpoints') ?? '', /at least one endpoint/);
  assert.ok(byPath.has('inbound.allow.0'), JSON.stringify(p));
});

test('flags and WEFT_* variables map onto the same fields; flags win; errors name the flag', async () => {
  const { overrides, sources } = sidecarOverrides(
    { service: 'web', upstream: ['api=127.0.0.1:9001=198.18.0.2:8443,198.18.0.3:8443', 'cache=127.0.0.1:9002=198.18.0.4:6443=tcp'], mtls: 'permissive' },
    { WEFT_SERVICE: 'ignored', WEFT_ISSUER_CERT: '/v/int.pem', WEFT_ISSUER_KEY: '/v/int.key', WEFT_TRUST_BUNDLE: '/v/root.pem', WEFT_INBOUND: ':8443', WEFT_APP: '127.0.0.1:8080' },
  );
  const c = validateConfig(sidecarConfigSchema, overrides);
  assert.equal(c.service, 'web');
  assert.deepEqual(c.identity?.issuer, { cert: '/v/int.pem', key: '/v/int.key', bundle: '/v/root.pem' });
  assert.deepEqual(c.inbound?.listen, { host: '0.0.0.0', port: 8443 });
  assert.equal(c.inbound?.mtls, 'permissive');
  assert.equal(c.upstreams.length, 2);
  assert.equal(c.upstreams[0]?.endpoints?.length, 2);
  assert.equal(c.upstreams[1]?.protocol, 'tcp');
  assert.equal(sources.get('service'), '--service');
  assert.equal(sources.get('identity'), 'WEFT_ISSUER_CERT');

  const bad = sidecarOverrides({ mtls: 'maybe' }, { WEFT_SERVICE: 'web', WEFT_ISSUER_DIR: './ca', WEFT_INBOUND: ':8443', WEFT_APP: '127.0.0.1:1' });
  await assert.rejects(loadConfig(sidecarConfigSchema, { overrides: bad.overrides, overrideSources: bad.sources }), /--mtls inbound\.mtls: mtls must be strict or permissive/);
});

test('a flag overrides the file field by field', () => {
  const merged = deepMerge({ service: 'api', inbound: { listen: ':8443', app: '127.0.0.1:1', mtls: 'strict' } }, { inbound: { mtls: 'permissive' } });
  assert.deepEqual(merged, { service: 'api', inbound: { listen: ':8443', app: '127.0.0.1:1', mtls: 'permissive' } });
});

test('--upstream must be NAME=LISTEN=ENDPOINTS[=PROTOCOL]', () => {
  assert.deepEqual(parseUpstreamFlag('api=127.0.0.1:9001=198.18.0.2:8443'), { name: 'api', listen: '127.0.0.1:9001', endpoints: ['198.18.0.2:8443'] });
  assert.throws(() => parseUpstreamFlag('api:9001'), (err: unknown) => isWeftError(err, 'WEFT_E_USAGE') && /NAME=LISTEN=ENDPOINT/.test(err.message));
});

test('host:port parsing', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseHostPort('[::1]:8443'), { host: '::1', port: 8443 });
  assert.deepEqual(parseHostPort(':8443'), { host: '0.0.0.0', port: 8443 });
  assert.equal(typeof parseHostPort('127.0.0.1'), 'string');
  assert.equal(typeof parseHostPort('127.0.0.1:70000'), 'string');
  assert.equal(typeof parseHostPort('[nope]:1'), 'string');
});

test('durations', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('20s'), 20_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.throws(() => parseDuration('10'), /write a number and a unit/);
  assert.throws(() => parseDuration('-1s'), /not a duration/);
  assert.throws(() => parseDuration(''), /not a duration/);
  assert.equal(formatDuration(90_000), '90s');
  assert.equal(formatDuration(86_400_000), '1d');
});

test('static routes: backendRefs name upstreams of the file; route kinds fit the protocol; traffic policy sections in their place', () => {
  const upstream = { name: 'api', listen: '127.0.0.1:9001', endpoints: [{ address: '198.18.0.2:8443', metadata: { version: 'v2' } }] };
  const ok = validateConfig(sidecarConfigSchema, {
    ...minimal,
    upstreams: [{ ...upstream, routes: [{ kind: 'HTTPRoute', name: 'r', rules: [{ backendRefs: [{ name: 'api', subset: { version: 'v2' } }] }] }], trafficPolicy: { loadBalancer: { policy: 'RoundRobin' } } }],
  });
  assert.equal(ok.upstreams[0]?.routes?.[0]?.kind, 'HTTPRoute');
  assert.deepEqual(ok.upstreams[0]?.endpoints?.[0]?.metadata, { version: 'v2' });
  const problems = problemsOf(() =>
    validateConfig(sidecarConfigSchema, {
      ...minimal,
      inbound: { listen: '0.0.0.0:8443', app: '127.0.0.1:8080', trafficPolicy: { loadBalancer: { policy: 'RoundRobin' } } },
      upstreams: [
        { ...upstream, routes: [{ kind: 'HTTPRoute', name: 'r', rules: [{ backendRefs: [{ name: 'payments' }] }] }], trafficPolicy: { rateLimit: { requestsPerSecond: 5 } } },
        { name: 'db', listen: '127.0.0.1:9002', protocol: 'tcp', endpoints: ['198.18.0.3:8443'], routes: [{ kind: 'HTTPRoute', name: 'd', rules: [{ backendRefs: [{ name: 'db' }] }] }] },
      ],
    }),
  );
  const text = problems.map((p) => `${p.path}: ${p.message}`).join('\n');
  assert.match(text, /upstreams\.0\.routes\.0\.rules\.0\.backendRefs\.0: backendRef payments is not an upstream of this sidecar/);
  assert.match(text, /upstreams\.0\.trafficPolicy\.rateLimit: rateLimit is enforced by the called service's own sidecar/);
  assert.match(text, /inbound\.trafficPolicy\.loadBalancer: loadBalancer is applied by each caller's sidecar/);
  assert.match(text, /upstreams\.1\.routes\.0\.kind: a HTTPRoute does not apply to a tcp upstream/);
  const connected = problemsOf(() =>
    validateConfig(sidecarConfigSchema, { service: 'web', server: { urls: ['https://198.18.0.1:8443'], state: '/tmp/s' }, upstreams: [{ name: 'api', listen: '127.0.0.1:9001', routes: [{ kind: 'HTTPRoute', name: 'r', rules: [{ backendRefs: [{ name: 'api' }] }] }] }] }),
  );
  assert.match(connected.map((p) => p.message).join('\n'), /in connected mode routes come from HTTPRoute, GRPCRoute and TCPRoute resources/);
});
