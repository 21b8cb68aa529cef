import { z } from 'zod';
import { isLoopback, type HostPort } from './address.js';
import { parseDuration } from '../duration.js';
import { dnsLabel, duration, hostPort, spiffeId } from './common-schema.js';
import { authorizationRuleSchema } from '../control/resources.js';

// The configuration is validated once at start and on each reload: zod's JIT (code generated
// with new Function on an object schema's first parse) costs more than it saves there.
z.config({ jitless: true });

const name = dnsLabel;

const protocol = z.enum(['http', 'tcp'], { message: 'protocol must be http or tcp' });

const issuerSchema = z
  .strictObject({
    dir: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    bundle: z.string().min(1).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.dir !== undefined && (v.cert !== undefined || v.key !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give either dir or cert+key, not both' });
    } else if (v.dir === undefined && (v.cert === undefined || v.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'give dir (a `weft ca init` folder) or both cert and key (files or PEM text)',
      });
    }
  });

const identitySchema = z
  .strictObject({
    issuer: issuerSchema.optional(),
    files: z.strictObject({ cert: z.string().min(1), key: z.string().min(1), bundle: z.string().min(1) }).optional(),
    ttl: duration.default(parseDuration('24h')).refine((ms) => ms >= 10_000, 'ttl must be at least 10s'),
  })
  .superRefine((v, ctx) => {
    const n = Number(v.issuer !== undefined) + Number(v.files !== undefined);
    if (n !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          n === 0
            ? 'no identity source: set identity.issuer (self-issue from an intermediate) or identity.files (certificate files)'
            : 'set only one of identity.issuer and identity.files',
      });
    }
  });

/** Static authorization rules: an AuthorizationPolicy's `rules` and the Mesh's default action (docs/authorization.md). */
const authorizationSchema = z.strictObject({
  defaultAction: z.enum(['allow', 'deny'], { message: 'defaultAction must be allow or deny' }).default('allow'),
  rules: z.array(authorizationRuleSchema).default([]),
});

const inboundSchema = z
  .strictObject({
    listen: hostPort,
    app: hostPort,
    protocol: protocol.default('http'),
    mtls: z.enum(['strict', 'permissive'], { message: 'mtls must be strict or permissive' }).default('strict'),
    /** With mtls strict: plaintext is still served, and what strict mode would refuse is logged and counted. */
    strictDryRun: z.boolean().default(false),
    allow: z.array(spiffeId).optional(),
    authorization: authorizationSchema.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.strictDryRun && v.mtls !== 'strict') {
      ctx.addIssue({
        code: 'custom',
        path: ['strictDryRun'],
        message: 'strictDryRun is a dry run of mtls: strict; set mtls: strict with it (plaintext is still served during the dry run), or remove strictDryRun',
      });
    }
    if (v.protocol === 'tcp') {
      v.authorization?.rules.forEach((rule, i) => {
        const to = rule.to;
        if (to !== undefined && (to.paths !== undefined || to.methods !== undefined || to.headers !== undefined)) {
          ctx.addIssue({
            code: 'custom',
            path: ['authorization', 'rules', i, 'to'],
            message: 'paths, methods and headers need protocol: http; a tcp listener authorizes whole connections by caller, so remove `to` from this rule',
          });
        }
      });
    }
  });

const upstreamSchema = z.strictObject({
  name: name('upstream name'),
  namespace: name('namespace').optional(),
  listen: hostPort.refine((a) => isLoopback(a.host), {
    message: 'an upstream listener must be on loopback (e.g. 127.0.0.1:9001): it accepts plaintext and calls out with this service\'s identity',
  }),
  protocol: protocol.default('http'),
  endpoints: z.array(hostPort).min(1, 'list at least one endpoint (host:port of a remote sidecar)'),
  identity: spiffeId.optional(),
});

const limitsSchema = z.strictObject({
  maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
  maxHeaders: z.number().int().min(8).max(2000).default(100),
  headerTimeout: duration.default(10_000),
  idleTimeout: duration.default(60_000),
  streamIdleTimeout: duration.default(300_000),
  connectTimeout: duration.default(5_000),
});

/** The sidecar's static configuration, as written in YAML (see docs/sidecar.md). */
export const sidecarConfigSchema = z
  .strictObject({
    service: name('service'),
    namespace: name('namespace').default('default'),
    trustDomain: z.string().min(1).optional(),
    identity: identitySchema,
    inbound: inboundSchema.optional(),
    upstreams: z.array(upstreamSchema).default([]),
    admin: z
      .strictObject({
        listen: hostPort.refine((a) => isLoopback(a.host), {
          message: 'the admin endpoint must listen on loopback (127.0.0.1 or ::1): it exposes certificates and config',
        }),
      })
      .default({ listen: { host: '127.0.0.1', port: 15000 } }),
    limits: limitsSchema.default(() => limitsSchema.parse({})),
    drainTimeout: duration.default(15_000),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, string>();
    const claim = (addr: HostPort, path: (string | number)[]) => {
      const key = `${addr.host}:${addr.port}`;
      const owner = seen.get(key);
      if (addr.port !== 0 && owner !== undefined) {
        ctx.addIssue({ code: 'custom', path, message: `${key} is already used by ${owner}` });
      }
      seen.set(key, path.join('.'));
    };
    claim(cfg.admin.listen, ['admin', 'listen']);
    if (cfg.inbound) claim(cfg.inbound.listen, ['inbound', 'listen']);
    const names = new Set<string>();
    cfg.upstreams.forEach((u, i) => {
      if (names.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `upstream "${u.name}" is listed twice` });
      names.add(u.name);
      claim(u.listen, ['upstreams', i, 'listen']);
    });
  });

/** Validated sidecar configuration: durations in milliseconds, addresses parsed. */
export type SidecarConfig = z.output<typeof sidecarConfigSchema>;
export type InboundConfig = NonNullable<SidecarConfig['inbound']>;
export type UpstreamConfig = SidecarConfig['upstreams'][number];
export type LimitsConfig = SidecarConfig['limits'];
export type IdentityConfig = SidecarConfig['identity'];
