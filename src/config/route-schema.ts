import { z } from 'zod';
import { dnsLabel, duration } from './common-schema.js';
import { regexProblem } from '../proxy/route/regex.js';
import { parseGrpcRetryCode } from '../proxy/route/grpc-status.js';
import { uneditableHeaderProblem } from '../proxy/route/header-edit.js';

/**
 * Gateway API routes in mesh mode (GAMMA): the `spec` of HTTPRoute, GRPCRoute and TCPRoute
 * resources, and the sidecar's static `upstreams[].routes`. The fields and their defaults
 * are Gateway API v1's; what weft does not support is refused with a message rather than
 * ignored. Semantics and the list of supported fields: docs/routing.md. The route compiler
 * (src/proxy/route) relies on these checks: every regex compiles, ReplacePrefixMatch comes
 * with exactly one PathPrefix match, and no filter edits a header the proxy manages.
 */

/** The documentation page the messages point to. */
export const ROUTE_DOCS = 'docs/routing.md';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const METADATA_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/i;
const GRPC_SERVICE = /^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$/;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

type Ctx = z.RefinementCtx;

/** What is wrong with a literal path (a match, ReplaceFullPath, a redirect path), or null. */
function pathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'a path starts with / (e.g. /api)';
  if (!PATH_CHARS.test(path)) return "a path holds only URL path characters (letters, digits, -._~!$&'()*+,;=:@/ and %XX escapes): no ?, #, spaces or non-ASCII";
  if (path.includes('//')) return 'a path cannot hold //';
  if (/\/\.\.?(\/|$)/.test(path)) return 'a path cannot hold /./ or /../ segments';
  return null;
}

function checkRegex(ctx: Ctx, path: (string | number)[], source: string): void {
  const problem = regexProblem(source);
  if (problem !== null) ctx.addIssue({ code: 'custom', path, message: problem });
}

/** A duplicate of an earlier name (compared by `key`) gets an issue at its index. */
function checkUnique<T>(ctx: Ctx, items: readonly T[], key: (item: T) => string, message: (key: string) => string, path: (i: number) => (string | number)[]): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: 'custom', path: path(i), message: message(k) });
    seen.add(k);
  });
}

const port = z.number().int('a port is a whole number').min(1, 'a port is 1-65535').max(65535, 'a port is 1-65535');
const group = z.enum(['', 'core'], { message: 'group must be "" or core (a Service is in the core group)' }).optional();
const headerName = z.string().max(256).regex(TOKEN, "a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons)");
const headerValue = z.string().max(4096).regex(/^[^\r\n\0]*$/, 'a header value cannot hold CR, LF or NUL');
const hostname = z.string().max(253).regex(HOSTNAME, 'a hostname is lowercase DNS labels separated by dots (e.g. api.example.org), without a port');

// ---------------------------------------------------------------- references

/**
 * A route's parent (GAMMA): the Service whose callers the route applies to. `port` is
 * accepted for compatibility; a weft Service has one port.
 */
const parentRef = z.strictObject({
  group,
  kind: z
    .literal('Service', { message: 'parentRefs kind must be Service: in mesh mode a route attaches to the Service it routes calls to (Gateways are not supported by weft)' })
    .default('Service'),
  name: dnsLabel('parentRefs name'),
  namespace: dnsLabel('parentRefs namespace').optional(),
  port: port.optional(),
});

/** Only instances whose catalog metadata holds all these pairs (weft extension). */
const subset = z.record(z.string().regex(METADATA_NAME, 'a subset key is a metadata name: letters, digits, ".", "_" or "-"'), z.string().max(253));

/** Where a backendRef or mirror points: a Service, optionally one subset of its instances. */
const backendObjectRef = {
  group,
  kind: z.literal('Service', { message: 'backendRefs kind must be Service' }).default('Service'),
  name: dnsLabel('backendRef name'),
  namespace: dnsLabel('backendRef namespace').optional(),
  port: port.optional(),
  subset: subset.optional(),
};

const backendRef = z
  .strictObject({
    ...backendObjectRef,
    /** Relative share of requests (Gateway API); 0 sends nothing to this backend. */
    weight: z.number().int('weight is a whole number').min(0, 'weight is 0-1000000').max(1_000_000, 'weight is 0-1000000').default(1),
    /** Refused unless empty (manifests sometimes carry `filters: []`). */
    filters: z.array(z.unknown()).max(0, 'per-backend filters are not supported by weft: put the filters on the rule').optional(),
  })
  .transform(({ filters: _filters, ...ref }) => ref);

const mirrorBackendRef = z.strictObject(backendObjectRef);

const backendRefs = z.array(backendRef).max(16, 'at most 16 backendRefs per rule');

// ---------------------------------------------------------------- matches

const valueMatchType = (what: string) => z.enum(['Exact', 'RegularExpression'], { message: `${what} type must be Exact or RegularExpression` }).default('Exact');

const headerMatch = z
  .strictObject({ type: valueMatchType('a header match'), name: headerName, value: z.string().max(4096) })
  .superRefine((h, ctx) => {
    if (h.type === 'RegularExpression') checkRegex(ctx, ['value'], h.value);
  });

const headerMatches = z
  .array(headerMatch)
  .max(16, 'at most 16 header matches')
  .superRefine((list, ctx) => checkUnique(ctx, list, (h) => h.name.toLowerCase(), (n) => `header "${n}" is matched twice: keep one condition per header`, (i) => [i, 'name']));

const queryParamMatch = z
  .strictObject({
    type: valueMatchType('a query parameter match'),
    name: z.string().min(1).max(256).regex(TOKEN, "a query parameter name is letters, digits and !#$%&'*+-.^_`|~"),
    value: z.string().max(1024),
  })
  .superRefine((q, ctx) => {
    if (q.type === 'RegularExpression') checkRegex(ctx, ['value'], q.value);
  });

const pathMatch = z
  .strictObject({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression'], { message: 'a path match type must be Exact, PathPrefix or RegularExpression' }).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .superRefine((p, ctx) => {
    if (p.type === 'RegularExpression') return checkRegex(ctx, ['value'], p.value);
    const problem = pathProblem(p.value);
    if (problem !== null) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  });

const DEFAULT_PATH = { type: 'PathPrefix', value: '/' } as const;

const httpMatch = z.strictObject({
  path: pathMatch.default(() => ({ ...DEFAULT_PATH })),
  headers: headerMatches.default([]),
  queryParams: z
    .array(queryParamMatch)
    .max(16, 'at most 16 query parameter matches')
    .superRefine((list, ctx) => checkUnique(ctx, list, (q) => q.name, (n) => `query parameter "${n}" is matched twice: keep one condition per parameter`, (i) => [i, 'name']))
    .default([]),
  method: z.enum(METHODS, { message: `method must be an upper-case HTTP method: ${METHODS.join(', ')}` }).optional(),
});

const grpcMethodMatch = z
  .strictObject({
    type: valueMatchType('a gRPC method match'),
    service: z.string().min(1).max(1024).optional(),
    method: z.string().min(1).max(1024).optional(),
  })
  .superRefine((m, ctx) => {
    if (m.service === undefined && m.method === undefined) {
      ctx.addIssue({ code: 'custom', message: 'give service, method or both (leave out `method:` entirely to match every call)' });
    }
    if (m.type === 'RegularExpression') {
      if (m.service !== undefined) checkRegex(ctx, ['service'], m.service);
      if (m.method !== undefined) checkRegex(ctx, ['method'], m.method);
      return;
    }
    if (m.service !== undefined && !GRPC_SERVICE.test(m.service)) {
      ctx.addIssue({ code: 'custom', path: ['service'], message: 'a gRPC service is a dotted name of letters, digits and _ (e.g. shop.v1.Cart); use type RegularExpression for a pattern' });
    }
    if (m.method !== undefined && !GRPC_METHOD.test(m.method)) {
      ctx.addIssue({ code: 'custom', path: ['method'], message: 'a gRPC method is letters, digits and _ (e.g. GetCart); use type RegularExpression for a pattern' });
    }
  });

const grpcMatch = z.strictObject({ method: grpcMethodMatch.optional(), headers: headerMatches.default([]) });

type HttpMatchOutput = z.output<typeof httpMatch>;
type GrpcMatchOutput = z.output<typeof grpcMatch>;

// ---------------------------------------------------------------- filters

const editableHeader = headerName.superRefine((name, ctx) => {
  const problem = uneditableHeaderProblem(name);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

const headerPairs = z
  .array(z.strictObject({ name: editableHeader, value: headerValue }))
  .max(16, 'at most 16 headers per list')
  .superRefine((list, ctx) => checkUnique(ctx, list, (h) => h.name.toLowerCase(), (n) => `header "${n}" is listed twice: keep one`, (i) => [i, 'name']));

const headerModifier = z
  .strictObject({
    set: headerPairs.optional(),
    add: headerPairs.optional(),
    remove: z
      .array(editableHeader)
      .max(16, 'at most 16 headers per list')
      .superRefine((list, ctx) => checkUnique(ctx, list, (n) => n.toLowerCase(), (n) => `header "${n}" is listed twice: keep one`, (i) => [i]))
      .optional(),
  })
  .refine((m) => (m.set?.length ?? 0) + (m.add?.length ?? 0) + (m.remove?.length ?? 0) > 0, 'give at least one header to set, add or remove');

const pathModifier = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      type: z.literal('ReplaceFullPath'),
      replaceFullPath: z.string().max(1024).superRefine((p, ctx) => {
        const problem = pathProblem(p);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      }),
    }),
    z.strictObject({
      type: z.literal('ReplacePrefixMatch'),
      /** May be empty: the matched prefix is removed. */
      replacePrefixMatch: z.string().max(1024).superRefine((p, ctx) => {
        const problem = p === '' ? null : pathProblem(p);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      }),
    }),
  ],
  { message: 'a path modifier type must be ReplaceFullPath or ReplacePrefixMatch' },
);

const urlRewrite = z
  .strictObject({ hostname: hostname.optional(), path: pathModifier.optional() })
  .refine((r) => r.hostname !== undefined || r.path !== undefined, 'give hostname, path or both');

const requestRedirect = z.strictObject({
  scheme: z.enum(['http', 'https'], { message: 'scheme must be http or https' }).optional(),
  hostname: hostname.optional(),
  path: pathModifier.optional(),
  port: port.optional(),
  statusCode: z.literal([301, 302, 303, 307, 308], { message: 'statusCode must be 301, 302, 303, 307 or 308' }).default(302),
});

const requestMirror = z
  .strictObject({
    backendRef: mirrorBackendRef,
    percent: z.number().int('percent is a whole number (use fraction for less than 1%)').min(0, 'percent is 0-100').max(100, 'percent is 0-100').optional(),
    fraction: z
      .strictObject({
        numerator: z.number().int().min(0, 'numerator is 0 or more'),
        denominator: z.number().int().min(1, 'denominator is 1 or more').default(100),
      })
      .refine((f) => f.numerator <= f.denominator, { message: 'numerator must not exceed denominator', path: ['numerator'] })
      .optional(),
  })
  .superRefine((m, ctx) => {
    if (m.percent !== undefined && m.fraction !== undefined) ctx.addIssue({ code: 'custom', message: 'give percent or fraction, not both' });
  })
  .transform(({ backendRef: ref, percent, fraction }) => ({
    backendRef: ref,
    /** The share of requests mirrored, 0-100 (from percent or fraction; default 100). */
    percent: fraction !== undefined ? (100 * fraction.numerator) / fraction.denominator : (percent ?? 100),
  }));

/** A filter type weft refuses, with its Gateway API config field allowed (so the type is what the message is about). */
const unsupportedFilter = <T extends string>(type: T, message: string) => z.looseObject({ type: z.literal(type) }).pipe(z.never({ message }));

const requestHeaderFilter = z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier });
const responseHeaderFilter = z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier });
const mirrorFilter = z.strictObject({ type: z.literal('RequestMirror'), requestMirror });
const extensionRef = unsupportedFilter('ExtensionRef', 'ExtensionRef filters are not supported by weft: remove this filter');

const httpFilter = z.discriminatedUnion(
  'type',
  [
    requestHeaderFilter,
    responseHeaderFilter,
    z.strictObject({ type: z.literal('URLRewrite'), urlRewrite }),
    z.strictObject({ type: z.literal('RequestRedirect'), requestRedirect }),
    mirrorFilter,
    extensionRef,
    unsupportedFilter('CORS', 'CORS filters are not supported by weft: answer CORS in the application, or remove this filter'),
    unsupportedFilter('ExternalAuth', 'ExternalAuth filters are not supported by weft: use an AuthorizationPolicy (docs/authorization.md)'),
  ],
  { message: 'a filter type must be RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect or RequestMirror' },
);

const grpcFilter = z.discriminatedUnion('type', [requestHeaderFilter, responseHeaderFilter, mirrorFilter, extensionRef], {
  message: 'a GRPCRoute filter type must be RequestHeaderModifier, ResponseHeaderModifier or RequestMirror',
});

// ---------------------------------------------------------------- timeouts and retries

/** Gateway API durations; `0s` disables that timeout. */
const timeouts = z
  .strictObject({ request: duration.optional(), backendRequest: duration.optional() })
  .superRefine((t, ctx) => {
    if (t.request !== undefined && t.backendRequest !== undefined && t.request !== 0 && t.backendRequest > t.request) {
      ctx.addIssue({ code: 'custom', path: ['backendRequest'], message: 'backendRequest (each attempt) must not be longer than request (the whole request, retries included)' });
    }
  });

/**
 * GEP-1731: `attempts` is the number of retries after the first try (0: no retry); weft's
 * default when `retry` is given without it is 1. `backoff` is the minimum wait before a retry.
 */
const retryFields = {
  attempts: z.number().int('attempts is a whole number').min(0, 'attempts is 0-10').max(10, 'attempts is 0-10 (retries after the first try)').default(1),
  backoff: duration.optional(),
};

const httpRetry = z.strictObject({
  ...retryFields,
  /** Retried HTTP statuses; absent: only connection failures are retried. */
  codes: z.array(z.number().int().min(500, 'a retried status is 500-599').max(599, 'a retried status is 500-599')).max(100).default([]),
});

const grpcRetryCode = z.union([z.string(), z.number()], { message: 'a retried gRPC status is a name (UNAVAILABLE) or a number 1-16' }).transform((value, ctx) => {
  const code = parseGrpcRetryCode(value);
  if (typeof code === 'string') {
    ctx.addIssue({ code: 'custom', message: code });
    return z.NEVER;
  }
  return code;
});

const grpcRetry = z.strictObject({
  ...retryFields,
  /** Retried gRPC statuses (names or numbers, as numbers after validation); absent: only connection failures. */
  codes: z.array(grpcRetryCode).max(17).default([]),
});

const sessionPersistence = z.never({ message: 'sessionPersistence is not supported by weft: remove it (requests are balanced per request)' }).optional();

// ---------------------------------------------------------------- rules

type Filter = { type: string };

/** One filter of each type per rule (RequestMirror too: weft mirrors to one backend per rule). */
function checkFilterCounts(ctx: Ctx, filters: readonly Filter[]): void {
  const seen = new Set<string>();
  filters.forEach((f, i) => {
    if (seen.has(f.type)) {
      ctx.addIssue({
        code: 'custom',
        path: ['filters', i, 'type'],
        message: f.type === 'RequestMirror' ? 'weft mirrors to one backend per rule: keep one RequestMirror filter' : `only one ${f.type} filter per rule: merge them`,
      });
    }
    seen.add(f.type);
  });
}

function checkRuleNames(ctx: Ctx, rules: readonly { name?: string | undefined }[]): void {
  const named = rules.flatMap((r, i) => (r.name === undefined ? [] : [{ name: r.name, i }]));
  checkUnique(ctx, named, (r) => r.name, (n) => `rule name "${n}" is used twice in this route: rule names are unique`, (j) => [named[j]!.i, 'name']);
}

const httpRule = z
  .strictObject({
    name: dnsLabel('a rule name').optional(),
    /** Empty or absent: every request (PathPrefix /). */
    matches: z
      .array(httpMatch)
      .max(64, 'at most 64 matches per rule')
      .default([])
      .transform((list): HttpMatchOutput[] => (list.length === 0 ? [{ path: { ...DEFAULT_PATH }, headers: [], queryParams: [] }] : list)),
    filters: z.array(httpFilter).max(16, 'at most 16 filters per rule').default([]),
    backendRefs: backendRefs.default([]),
    timeouts: timeouts.optional(),
    retry: httpRetry.optional(),
    sessionPersistence,
  })
  .superRefine((rule, ctx) => {
    checkFilterCounts(ctx, rule.filters);
    const redirect = rule.filters.findIndex((f) => f.type === 'RequestRedirect');
    const rewrite = rule.filters.findIndex((f) => f.type === 'URLRewrite');
    if (redirect >= 0 && rewrite >= 0) {
      ctx.addIssue({ code: 'custom', path: ['filters', rewrite], message: 'a rule cannot both redirect (RequestRedirect) and rewrite (URLRewrite): keep one' });
    }
    if (redirect >= 0 && rule.backendRefs.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['backendRefs'], message: 'a rule with a RequestRedirect answers the redirect itself: remove its backendRefs (or the redirect)' });
    }
    rule.filters.forEach((f, i) => {
      const modifier = f.type === 'URLRewrite' ? f.urlRewrite.path : f.type === 'RequestRedirect' ? f.requestRedirect.path : undefined;
      if (modifier?.type !== 'ReplacePrefixMatch') return;
      if (rule.matches.length !== 1 || rule.matches[0]!.path.type !== 'PathPrefix') {
        const field = f.type === 'URLRewrite' ? 'urlRewrite' : 'requestRedirect';
        ctx.addIssue({
          code: 'custom',
          path: ['filters', i, field, 'path'],
          message: 'ReplacePrefixMatch replaces the matched prefix: the rule needs exactly one match, with a PathPrefix path (split the rule to rewrite several prefixes)',
        });
      }
    });
  });

const grpcRule = z
  .strictObject({
    name: dnsLabel('a rule name').optional(),
    /** Empty or absent: every call. */
    matches: z
      .array(grpcMatch)
      .max(64, 'at most 64 matches per rule')
      .default([])
      .transform((list): GrpcMatchOutput[] => (list.length === 0 ? [{ headers: [] }] : list)),
    filters: z.array(grpcFilter).max(16, 'at most 16 filters per rule').default([]),
    backendRefs: backendRefs.default([]),
    /** weft extension (not in GRPCRoute v1): as HTTPRoute's. */
    timeouts: timeouts.optional(),
    /** weft extension (not in GRPCRoute v1): as HTTPRoute's, with gRPC status codes. */
    retry: grpcRetry.optional(),
    sessionPersistence,
  })
  .superRefine((rule, ctx) => checkFilterCounts(ctx, rule.filters));

const tcpRule = z.strictObject({
  name: dnsLabel('a rule name').optional(),
  backendRefs: z.array(backendRef).min(1, 'a TCPRoute rule needs at least one backendRef').max(16, 'at most 16 backendRefs per rule'),
});

const rulesOf = <S extends z.ZodType<{ name?: string | undefined }>>(rule: S) =>
  z
    .array(rule)
    .min(1, 'a route needs at least one rule')
    .max(64, 'at most 64 rules per route')
    .superRefine((rules, ctx) => checkRuleNames(ctx, rules));

const httpRules = rulesOf(httpRule);
const grpcRules = rulesOf(grpcRule);
/** A TCP connection has nothing to match on, so a TCPRoute has a single rule. */
const tcpRules = z
  .array(tcpRule)
  .min(1, 'a route needs at least one rule')
  .max(1, 'a TCPRoute has one rule (a connection has nothing to match on): put every backendRef in it');

// ---------------------------------------------------------------- specs

const parentRefs = z.array(parentRef).min(1, 'give at least one parentRef: the Service the route applies to').max(32);
/** Accepted for compatibility with Gateway API manifests and ignored: in mesh mode the parent Service selects the traffic. */
const hostnames = z.array(z.string().max(253)).max(16).optional();

/** The `spec` of an HTTPRoute resource. */
export const httpRouteSpec = z.strictObject({ parentRefs, hostnames, rules: httpRules });
/** The `spec` of a GRPCRoute resource. */
export const grpcRouteSpec = z.strictObject({ parentRefs, hostnames, rules: grpcRules });
/** The `spec` of a TCPRoute resource. */
export const tcpRouteSpec = z.strictObject({ parentRefs, rules: tcpRules });

/** The route kinds, as resource kinds and as `upstreams[].routes[].kind`. */
export const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TCPRoute'] as const;

/**
 * The sidecar's static routes (`upstreams[].routes`): routes without parentRefs, attached to
 * the upstream whose configuration holds them. Names are unique per kind; TCPRoute does
 * not mix with HTTP routes, and there is at most one.
 */
export const staticRoutesSchema = z
  .array(
    z.discriminatedUnion(
      'kind',
      [
        z.strictObject({ kind: z.literal('HTTPRoute'), name: dnsLabel('a route name'), rules: httpRules }),
        z.strictObject({ kind: z.literal('GRPCRoute'), name: dnsLabel('a route name'), rules: grpcRules }),
        z.strictObject({ kind: z.literal('TCPRoute'), name: dnsLabel('a route name'), rules: tcpRules }),
      ],
      { message: 'a route kind must be HTTPRoute, GRPCRoute or TCPRoute' },
    ),
  )
  .superRefine((routes, ctx) => {
    checkUnique(ctx, routes, (r) => `${r.kind} ${r.name}`, (k) => `${k} is listed twice: route names are unique per kind`, (i) => [i, 'name']);
    const tcp = routes.flatMap((r, i) => (r.kind === 'TCPRoute' ? [i] : []));
    if (tcp.length > 0 && tcp.length < routes.length) {
      ctx.addIssue({ code: 'custom', path: [tcp[0]!, 'kind'], message: 'a TCPRoute cannot sit with HTTPRoute or GRPCRoute routes: a tcp upstream takes one TCPRoute, an http upstream HTTPRoute and GRPCRoute routes' });
    } else if (tcp.length > 1) {
      ctx.addIssue({ code: 'custom', path: [tcp[1]!, 'kind'], message: 'an upstream takes one TCPRoute: put every backendRef in one rule' });
    }
  });

/** The `spec` of an HTTPRoute, validated (defaults filled, durations in ms). */
export type HttpRouteSpec = z.output<typeof httpRouteSpec>;
/** The `spec` of a GRPCRoute, validated. */
export type GrpcRouteSpec = z.output<typeof grpcRouteSpec>;
/** The `spec` of a TCPRoute, validated. */
export type TcpRouteSpec = z.output<typeof tcpRouteSpec>;
/** One entry of `upstreams[].routes`, validated. */
export type StaticRoute = z.output<typeof staticRoutesSchema>[number];
/** A route's parentRef (a Service). */
export type ParentRefConfig = z.output<typeof parentRef>;
/** Where traffic goes: a Service (namespace: the route's when absent), optionally a subset of its instances. */
export type BackendRefConfig = z.output<typeof mirrorBackendRef>;
/** A rule's backendRef: a BackendRefConfig with its weight. */
export type WeightedBackendRefConfig = z.output<typeof backendRef>;
/** One HTTPRoute rule, validated: `matches` has at least one entry (default PathPrefix /). */
export type HttpRouteRule = HttpRouteSpec['rules'][number];
/** One match of an HTTPRoute rule. */
export type HttpRouteMatch = HttpRouteRule['matches'][number];
/** One filter of an HTTPRoute rule. */
export type HttpRouteFilter = HttpRouteRule['filters'][number];
/** One GRPCRoute rule, validated: `matches` has at least one entry (default: every call). */
export type GrpcRouteRule = GrpcRouteSpec['rules'][number];
/** One match of a GRPCRoute rule. */
export type GrpcRouteMatch = GrpcRouteRule['matches'][number];
/** One TCPRoute rule, validated. */
export type TcpRouteRule = TcpRouteSpec['rules'][number];
/** A header match (HTTPRoute and GRPCRoute). */
export type HeaderMatchConfig = z.output<typeof headerMatch>;
/** A URLRewrite / RequestRedirect path modifier. */
export type PathModifierConfig = z.output<typeof pathModifier>;
/** A RequestRedirect filter's configuration. */
export type RequestRedirectConfig = z.output<typeof requestRedirect>;
/** A URLRewrite filter's configuration. */
export type UrlRewriteConfig = z.output<typeof urlRewrite>;
/** A rule's timeouts, in ms (0: disabled). */
export type TimeoutsConfig = z.output<typeof timeouts>;
