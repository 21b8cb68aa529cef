import { z } from 'zod';
import { dnsLabel, duration, spiffeId } from '../config/common-schema.js';
import { RESERVED_NAMESPACE } from '../config/names.js';
import { ConfigError, type ConfigProblem } from '../config/problems.js';
import { validateConfig } from '../config/load.js';
import { grpcRouteSpec, httpRouteSpec, ROUTE_KINDS, tcpRouteSpec } from '../config/route-schema.js';
import { trafficPolicySchema } from '../config/traffic-policy-schema.js';

/**
 * The control plane's resource kinds, as users write them (YAML or JSON):
 * `{ kind, metadata: { name, namespace }, spec }`. The same schemas run in `weft apply`
 * (to point at file:line:col) and in the server (which is the authority). Mesh is one per
 * mesh (namespace `weft-system`); the others live in a namespace (default `default`).
 */

export const RESOURCE_DOCS = 'docs/control-plane.md';
export const MESH_NAMESPACE = RESERVED_NAMESPACE;

const mtlsMode = z.enum(['strict', 'permissive'], { message: 'mode must be strict or permissive' });

const meshSpec = z.strictObject({
  /** Must match the server's trust domain when given (a guard against applying to the wrong mesh). */
  trustDomain: z.string().optional(),
  mtls: z
    .strictObject({
      /** The mode of services that do not set their own. */
      mode: mtlsMode.default('permissive'),
      /** false: no service may be permissive (the migration is over). */
      allowPermissive: z.boolean().default(true),
    })
    .default({ mode: 'permissive', allowPermissive: true }),
  authorization: z
    .strictObject({
      /** What happens to a call no rule matches. */
      defaultAction: z.enum(['allow', 'deny'], { message: 'defaultAction must be allow or deny' }).default('allow'),
    })
    .default({ defaultAction: 'allow' }),
});

const healthCheck = z
  .strictObject({
    http: z.strictObject({ path: z.string().startsWith('/', 'the health check path must start with /') }).optional(),
    tcp: z.strictObject({}).optional(),
    interval: duration.default(10_000),
    timeout: duration.default(2_000),
  })
  .superRefine((v, ctx) => {
    if ((v.http === undefined) === (v.tcp === undefined)) ctx.addIssue({ code: 'custom', message: 'give exactly one of http (a path) or tcp (a connect check)' });
    if (v.timeout >= v.interval) ctx.addIssue({ code: 'custom', path: ['timeout'], message: 'the timeout must be shorter than the interval' });
  });

const serviceSpec = z.strictObject({
  /** Absent: detected per connection (HTTP/1, HTTP/2, or opaque TCP; docs/protocols.md). */
  protocol: z.enum(['http', 'http2', 'grpc', 'tcp'], { message: 'protocol must be http, http2, grpc or tcp (or absent: detected)' }).optional(),
  /** The destination's traffic policy: load balancing, limits, outlier detection, retry budget, rate limit, faults (docs/resilience.md). */
  trafficPolicy: trafficPolicySchema.optional(),
  mtls: z
    .strictObject({
      mode: mtlsMode,
      /**
       * false with mode strict: a dry run. Plaintext is still served, and every request or
       * connection strict mode would refuse is logged and counted (docs/migration.md).
       */
      enforce: z.boolean().default(true),
    })
    .optional(),
  healthCheck: healthCheck.optional(),
});

/** Who a rule is about: everyone (`*`), one SPIFFE ID, a service (in a namespace), or a whole namespace. */
const source = z.union(
  [
    z.literal('*'),
    z.strictObject({ spiffeId }),
    z.strictObject({ service: dnsLabel('service'), namespace: dnsLabel('namespace').optional() }),
    z.strictObject({ namespace: dnsLabel('namespace') }),
  ],
  { message: 'a source is "*", or one of {spiffeId}, {service[, namespace]}, {namespace}' },
);

const pathMatch = z.union([z.strictObject({ exact: z.string().startsWith('/') }), z.strictObject({ prefix: z.string().startsWith('/') })], {
  message: 'a path match is {exact: /path} or {prefix: /path/}',
});

const headerMatch = z
  .strictObject({ name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'a header name is a token'), exact: z.string().optional(), prefix: z.string().optional(), present: z.boolean().optional() })
  .refine((h) => [h.exact, h.prefix, h.present].filter((v) => v !== undefined).length === 1, 'give exactly one of exact, prefix or present');

const rule = z.strictObject({
  action: z.enum(['allow', 'deny', 'audit'], { message: 'action must be allow, deny or audit' }),
  from: z.array(source).min(1, 'a rule needs at least one source ("*" for everyone)'),
  /** HTTP only: what the rule covers; absent = every request. */
  to: z
    .strictObject({
      paths: z.array(pathMatch).min(1).optional(),
      methods: z.array(z.string().regex(/^[A-Z]+$/, 'methods are upper case, e.g. GET')).min(1).optional(),
      headers: z.array(headerMatch).min(1).optional(),
    })
    .optional(),
});

/** One AuthorizationPolicy rule's schema, shared with the sidecar's static `inbound.authorization`. */
export const authorizationRuleSchema = rule;

const authorizationPolicySpec = z.strictObject({
  targetRef: z.strictObject({ kind: z.literal('Service', { message: 'targetRef.kind must be Service' }), name: dnsLabel('targetRef.name') }),
  rules: z.array(rule).min(1, 'a policy needs at least one rule'),
});

const metadata = z.strictObject({ name: dnsLabel('metadata.name'), namespace: dnsLabel('metadata.namespace').optional() });
/** Gateway API routes may carry their apiVersion (gateway.networking.k8s.io/v1, v1alpha2); it is not checked. */
const apiVersion = z.string().optional();

const resourceSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({ kind: z.literal('Mesh'), metadata, spec: meshSpec }),
    z.strictObject({ kind: z.literal('Service'), metadata, spec: serviceSpec }),
    z.strictObject({ kind: z.literal('AuthorizationPolicy'), metadata, spec: authorizationPolicySpec }),
    z.strictObject({ apiVersion, kind: z.literal('HTTPRoute'), metadata, spec: httpRouteSpec }),
    z.strictObject({ apiVersion, kind: z.literal('GRPCRoute'), metadata, spec: grpcRouteSpec }),
    z.strictObject({ apiVersion, kind: z.literal('TCPRoute'), metadata, spec: tcpRouteSpec }),
  ],
  { message: 'kind must be Mesh, Service, AuthorizationPolicy, HTTPRoute, GRPCRoute or TCPRoute' },
);

export type Resource = z.output<typeof resourceSchema>;
export type MeshSpec = z.output<typeof meshSpec>;
export type ServiceSpec = z.output<typeof serviceSpec>;
export type HealthCheckSpec = z.output<typeof healthCheck>;
export type AuthorizationPolicySpec = z.output<typeof authorizationPolicySpec>;
/** One rule of an AuthorizationPolicy, validated (see docs/authorization.md). */
export type AuthorizationRule = z.output<typeof rule>;
export type AuthorizationSource = z.output<typeof source>;
export const RESOURCE_KINDS = ['Mesh', 'Service', 'AuthorizationPolicy', ...ROUTE_KINDS] as const;
export { ROUTE_KINDS };

/** The schema, for callers that locate problems in a YAML file themselves (`weft apply`). */
export const resourceValidator = resourceSchema;

/**
 * Validates a resource as data (JSON from the API). Defaults are filled in; the namespace
 * is `weft-system` for Mesh and `default` when absent. Throws ConfigError with every problem.
 */
export function validateResource(raw: unknown): NormalizedResource {
  return normalize(validateConfig(resourceSchema, raw, RESOURCE_DOCS));
}

/** A validated resource with its store key. */
export interface NormalizedResource {
  readonly kind: Resource['kind'];
  readonly namespace: string;
  readonly name: string;
  readonly spec: Resource['spec'];
}

export function normalize(resource: Resource): NormalizedResource {
  const namespace = resource.kind === 'Mesh' ? MESH_NAMESPACE : (resource.metadata.namespace ?? 'default');
  return { kind: resource.kind, namespace, name: resource.metadata.name, spec: resource.spec };
}

/** Rules that need more than one resource's own fields: checked by the server at apply. */
export function crossCheck(resource: NormalizedResource, context: { trustDomain: string }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (resource.kind === 'Mesh') {
    const spec = resource.spec as MeshSpec;
    if (spec.trustDomain !== undefined && spec.trustDomain !== context.trustDomain) {
      problems.push({ path: 'spec.trustDomain', message: `this server's trust domain is ${context.trustDomain}, not ${spec.trustDomain}` });
    }
  }
  return problems;
}

export { ConfigError };
