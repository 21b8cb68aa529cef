import { isIP } from 'node:net';
import { z } from 'zod';
import { isLoopback, type HostPort } from './address.js';
import { parseDuration } from '../duration.js';
import { dnsLabel, duration, hostPort, spiffeId } from './common-schema.js';
import { authorizationRuleSchema } from '../control/resources.js';
import { staticRoutesSchema, type StaticRoute } from './route-schema.js';
import { inboundTrafficPolicySchema, upstreamTrafficPolicySchema, type TrafficPolicyConfig } from './traffic-policy-schema.js';

// The configuration is validated once at start and on each reload: zod's JIT (code generated
// with new Function on an object schema's first parse) costs more than it saves there.
z.config({ jitless: true });

const name = dnsLabel;

/**
 * http: HTTP/1.1 and HTTP/2 (by ALPN or the HTTP/2 preface); http2 and grpc: the same, with
 * the intent declared; tcp: opaque bytes; auto: detected per connection from the first bytes.
 */
const protocol = z.enum(['http', 'http2', 'grpc', 'tcp', 'auto'], { message: 'protocol must be http, http2, grpc, tcp or auto' });

const metadataName = z.string().regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/i, 'a metadata name is letters, digits, ".", "_" or "-"');

/** A static endpoint: "host:port", or {address, metadata, weight} for subsets and weighted balancing. */
const endpointSchema = z.union(
  [
    hostPort.transform((address) => ({ address, metadata: {} as Record<string, string>, weight: 1 })),
    z.strictObject({
      address: hostPort,
      /** Matched by a route backendRef's `subset` (e.g. version: v2). */
      metadata: z.record(metadataName, z.string().max(253)).default({}),
      /** For WeightedRoundRobin and LeastRequest (default 1). */
      weight: z.number().int().min(1).max(1000).default(1),
    }),
  ],
  { message: 'an endpoint is "host:port" or {address: "host:port", metadata: {...}, weight: N}' },
);

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

/** Static authorization (docs/authorization.md): rules, and/or named policies, and the default action. */
const authorizationSchema = z.strictObject({
  defaultAction: z.enum(['allow', 'deny'], { message: 'defaultAction must be allow or deny' }).default('allow'),
  /** Evaluated first, as a policy named `static`. */
  rules: z.array(authorizationRuleSchema).default([]),
  /** Named policies (the shape the control plane sends), evaluated in order after `rules`. */
  policies: z.array(z.strictObject({ name: name('policy name'), rules: z.array(authorizationRuleSchema) })).default([]),
});

const inboundSchema = z
  .strictObject({
    listen: hostPort,
    app: hostPort,
    // protocol, mtls and strictDryRun default to http, strict and false in static mode; in
    // connected mode the server's Service resource decides them (setting them is an error).
    protocol: protocol.optional(),
    mtls: z.enum(['strict', 'permissive'], { message: 'mtls must be strict or permissive' }).optional(),
    /** With mtls strict: plaintext is still served, and what strict mode would refuse is logged and counted. */
    strictDryRun: z.boolean().optional(),
    allow: z.array(spiffeId).optional(),
    authorization: authorizationSchema.optional(),
    /** The destination side of the traffic policy: the local rate limit (docs/resilience.md). */
    trafficPolicy: inboundTrafficPolicySchema.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.strictDryRun === true && (v.mtls ?? 'strict') !== 'strict') {
      ctx.addIssue({
        code: 'custom',
        path: ['strictDryRun'],
        message: 'strictDryRun is a dry run of mtls: strict; set mtls: strict with it (plaintext is still served during the dry run), or remove strictDryRun',
      });
    }
    if (v.protocol === 'tcp') {
      const lists = [{ path: ['authorization', 'rules'], rules: v.authorization?.rules ?? [] }, ...(v.authorization?.policies ?? []).map((p, i) => ({ path: ['authorization', 'policies', i, 'rules'], rules: p.rules }))];
      for (const list of lists) {
        list.rules.forEach((rule, i) => {
          const to = rule.to;
          if (to !== undefined && (to.paths !== undefined || to.methods !== undefined || to.headers !== undefined)) {
            ctx.addIssue({
              code: 'custom',
              path: [...list.path, i, 'to'],
              message: 'paths, methods and headers need protocol: http; a tcp listener authorizes whole connections by caller, so remove `to` from this rule',
            });
          }
        });
      }
    }
  });

const upstreamSchema = z.strictObject({
  name: name('upstream name'),
  namespace: name('namespace').optional(),
  listen: hostPort.refine((a) => isLoopback(a.host), {
    message: 'an upstream listener must be on loopback (e.g. 127.0.0.1:9001): it accepts plaintext and calls out with this service\'s identity',
  }),
  /** Static mode: default http. Connected mode: default the service's declared protocol. */
  protocol: protocol.optional(),
  /** Static mode only (at least one); connected mode takes the catalog's healthy instances. */
  endpoints: z.array(endpointSchema).optional(),
  identity: spiffeId.optional(),
  /** Static routes (HTTPRoute, GRPCRoute, TCPRoute rules) attached to this upstream (docs/routing.md). */
  routes: staticRoutesSchema.optional(),
  /** Load balancing, circuit breaking, outlier detection, retry budget, fault injection (docs/resilience.md). */
  trafficPolicy: upstreamTrafficPolicySchema.optional(),
});

/** Connected mode: the control plane this sidecar enrolls with and follows. */
const serverSchema = z.strictObject({
  /** The server's API (https://HOST:PORT); several for replicas, tried in turn. */
  urls: z
    .array(
      z.string().refine((u) => {
        try {
          const url = new URL(u);
          return url.protocol === 'https:' && url.pathname === '/' && url.search === '';
        } catch {
          return false;
        }
      }, 'a server URL is https://HOST:PORT'),
    )
    .min(1, 'give the server URL (https://HOST:PORT)'),
  /** A join token (`weft token create`): needed only until the first certificate is on disk. */
  token: z.string().min(1).optional(),
  /** Where the certificate, its key and the last-known-good snapshot are kept across restarts. */
  state: z.string().min(1),
  /** The address callers reach this instance on; default: this host's address toward the server. */
  advertise: z.string().refine((a) => isIP(a) !== 0, 'advertise must be an IP address').optional(),
  /** Registered with the instance (e.g. version: v2), for routing by subset. */
  metadata: z.record(metadataName, z.string().max(253)).default({}),
});

const limitsSchema = z.strictObject({
  maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
  maxHeaders: z.number().int().min(8).max(2000).default(100),
  headerTimeout: duration.default(10_000),
  idleTimeout: duration.default(60_000),
  streamIdleTimeout: duration.default(300_000),
  connectTimeout: duration.default(5_000),
});

/** A fraction 0–1 (a number, or a numeric string from a flag or variable). */
const fraction = (what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v),
    z.number({ message: `${what} must be a number from 0 to 1` }).min(0, `${what} must be from 0 to 1`).max(1, `${what} must be from 0 to 1`),
  );

/** An http(s) URL (the OTLP/HTTP traces endpoint). */
const httpUrl = z.string().refine((v) => {
  try {
    const url = new URL(v);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'give an http(s) URL, e.g. http://127.0.0.1:4318/v1/traces');

/** Access log, tracing (docs/observability.md). */
const observabilitySchema = z.strictObject({
  /** One JSON line per request or TCP connection. */
  accessLog: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Share of requests and connections logged. */
      sampling: fraction('accessLog.sampling').default(1),
      /** `stdout`, or a file appended to. */
      path: z.string().min(1).default('stdout'),
    })
    .default({ enabled: true, sampling: 1, path: 'stdout' }),
  /** Spans through OTLP/HTTP; absent: trace headers pass through untouched and no span is made. */
  tracing: z
    .strictObject({
      /** The collector's OTLP/HTTP traces URL (JSON encoding). */
      endpoint: httpUrl,
      /** Share of new traces (requests without a sampled parent) recorded; a caller's sampled flag is always followed. */
      sampling: fraction('tracing.sampling').default(0.01),
      /** Extra headers for the collector (e.g. an API key). */
      headers: z.record(z.string(), z.string()).default({}),
    })
    .optional(),
});

/** Observability settings, validated. */
export type ObservabilityConfig = z.infer<typeof observabilitySchema>;

/** The sidecar's static configuration, as written in YAML (see docs/sidecar.md). */
export const sidecarConfigSchema = z
  .strictObject({
    service: name('service'),
    namespace: name('namespace').default('default'),
    trustDomain: z.string().min(1).optional(),
    /** Static mode: where the certificate comes from. Connected mode: absent (the server signs it). */
    identity: identitySchema.optional(),
    /** Connected mode: the control plane. */
    server: serverSchema.optional(),
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
    observability: observabilitySchema.default(() => observabilitySchema.parse({})),
  })
  .superRefine((cfg, ctx) => {
    const connected = cfg.server !== undefined;
    if (connected && cfg.identity !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['identity'], message: 'a sidecar connected to a server (server.urls, --server) gets its certificate from the server: remove identity (and --issuer, --cert, --ttl)' });
    }
    if (connected && cfg.trustDomain !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['trustDomain'], message: "a sidecar connected to a server uses the server's trust domain: remove trustDomain (--trust-domain)" });
    }
    if (!connected && cfg.identity === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['identity'],
        message: 'no identity source: set server (connect to `weft server`), identity.issuer (self-issue from an intermediate) or identity.files (certificate files)',
      });
    }
    if (connected && cfg.inbound) {
      for (const field of ['protocol', 'mtls', 'strictDryRun', 'authorization', 'trafficPolicy'] as const) {
        if (cfg.inbound[field] !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['inbound', field], message: `in connected mode the server's Service resource sets the inbound ${field}: remove it here (docs/control-plane.md)` });
        }
      }
    }
    const upstreamKeys = new Set(cfg.upstreams.map((x) => `${x.namespace ?? cfg.namespace}/${x.name}`));
    cfg.upstreams.forEach((u, i) => {
      if (!connected && (u.endpoints === undefined || u.endpoints.length === 0)) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'endpoints'], message: 'list at least one endpoint (host:port of a remote sidecar)' });
      }
      if (connected && u.endpoints !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'endpoints'], message: 'in connected mode the endpoints come from the catalog: remove them' });
      }
      if (connected && u.identity !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'identity'], message: 'in connected mode the identity comes from the server: remove it' });
      }
      for (const field of ['routes', 'trafficPolicy'] as const) {
        if (connected && u[field] !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['upstreams', i, field], message: `in connected mode ${field === 'routes' ? 'routes come from HTTPRoute, GRPCRoute and TCPRoute resources' : "the traffic policy comes from the Service resource's trafficPolicy"} on the server: remove it here (docs/routing.md)` });
        }
      }
      (u.routes ?? []).forEach((route, r) => {
        const tcpKind = route.kind === 'TCPRoute';
        if ((u.protocol === 'tcp' && !tcpKind) || (tcpKind && u.protocol !== undefined && u.protocol !== 'tcp' && u.protocol !== 'auto')) {
          ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'routes', r, 'kind'], message: `a ${route.kind} does not apply to a ${u.protocol} upstream: use ${tcpKind ? 'HTTPRoute or GRPCRoute' : 'TCPRoute'}, or change the upstream's protocol` });
        }
      });
      (u.routes ?? []).forEach((route, r) => {
        route.rules.forEach((rule, k) => {
          const refs = [...(rule.backendRefs ?? []).map((b, j) => ({ b, path: ['backendRefs', j] })), ...mirrorRefs(rule).map((b) => ({ b, path: ['filters'] }))];
          for (const { b, path } of refs) {
            if (!upstreamKeys.has(`${b.namespace ?? u.namespace ?? cfg.namespace}/${b.name}`)) {
              ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'routes', r, 'rules', k, ...path], message: `backendRef ${b.name} is not an upstream of this sidecar: add an upstream named ${b.name} (its endpoints are the backend), or fix the name` });
            }
          }
        });
      });
    });
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
  })
  .transform((cfg) => {
    // Static mode: the documented defaults. Connected mode: the server's snapshot fills them.
    if (cfg.server !== undefined) return cfg;
    const inbound = cfg.inbound && { ...cfg.inbound, protocol: cfg.inbound.protocol ?? 'auto', mtls: cfg.inbound.mtls ?? 'strict', strictDryRun: cfg.inbound.strictDryRun ?? false };
    return { ...cfg, inbound, upstreams: cfg.upstreams.map((u) => ({ ...u, protocol: u.protocol ?? 'auto' })) };
  });

/** The backendRefs of a rule's RequestMirror filters. */
function mirrorRefs(rule: object): { name: string; namespace?: string | undefined }[] {
  const out: { name: string; namespace?: string | undefined }[] = [];
  for (const f of (rule as { filters?: readonly unknown[] }).filters ?? []) {
    const mirror = (f as { requestMirror?: { backendRef?: { name: string; namespace?: string } } }).requestMirror;
    if (mirror?.backendRef !== undefined) out.push(mirror.backendRef);
  }
  return out;
}

/** A service the control plane's snapshot knows: what routes may send to (connected mode). */
export interface MeshServiceConfig {
  readonly name: string;
  readonly namespace: string;
  readonly identity: string;
  readonly endpoints: readonly EndpointConfig[];
  readonly trafficPolicy: TrafficPolicyConfig | undefined;
}

/** A route attached to an upstream: static (`upstreams[].routes`), or from the server with its namespace and creation order. */
export type UpstreamRoute = StaticRoute & { readonly namespace?: string; readonly createdOrder?: number };

type ValidatedConfig = z.output<typeof sidecarConfigSchema>;

/**
 * Validated sidecar configuration: durations in milliseconds, addresses parsed. In
 * connected mode `meshServices` holds the snapshot's services (route backends) and
 * upstream routes carry their namespace and creation order.
 */
export type SidecarConfig = Omit<ValidatedConfig, 'upstreams'> & {
  readonly upstreams: readonly (Omit<ValidatedConfig['upstreams'][number], 'routes'> & { readonly routes?: readonly UpstreamRoute[] | undefined })[];
  readonly meshServices?: readonly MeshServiceConfig[];
};
export type InboundConfig = NonNullable<SidecarConfig['inbound']>;
export type UpstreamConfig = SidecarConfig['upstreams'][number];
export type LimitsConfig = SidecarConfig['limits'];
export type IdentityConfig = NonNullable<SidecarConfig['identity']>;
export type ServerConfig = NonNullable<SidecarConfig['server']>;
export type EndpointConfig = NonNullable<UpstreamConfig['endpoints']>[number];
export type ListenerProtocol = z.output<typeof protocol>;
