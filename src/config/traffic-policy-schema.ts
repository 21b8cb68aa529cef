import { z } from 'zod';
import { duration } from './common-schema.js';
import { formatDuration } from '../duration.js';

/**
 * The traffic policy of one destination service (docs/resilience.md): how its callers
 * balance load over its endpoints, limit concurrency toward it (circuit breaking), eject
 * failing endpoints (outlier detection), budget retries and inject faults; and how the
 * destination's own sidecar rate-limits its callers. The same schema is used under a
 * Service resource's `spec.trafficPolicy` and in a sidecar's static configuration.
 *
 * Every section is optional. An absent section turns its feature off, except
 * `loadBalancer` (absent = LeastRequest) and `connectionPool` (absent = no limits).
 * Durations are written as text (`30s`, `100ms`) and come out in milliseconds.
 */

/** The load-balancing policies, LeastRequest first (the default). */
export const LB_POLICIES = ['LeastRequest', 'RoundRobin', 'WeightedRoundRobin', 'Random', 'ConsistentHash'] as const;
/** One of LB_POLICIES. */
export type LbPolicy = (typeof LB_POLICIES)[number];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** An HTTP header name (an RFC 9110 token), stored in lower case. */
const headerName = (field: string) =>
  z
    .string({ message: `${field} must be a header name, e.g. x-user-id` })
    .regex(TOKEN, `${field} must be a header name (letters, digits and !#$%&'*+-.^_\`|~), e.g. x-user-id`)
    .transform((name) => name.toLowerCase());

/** A share of requests or endpoints: 0 to 100, decimals allowed. */
const percent = (field: string) =>
  z
    .number({ message: `${field} must be a number from 0 to 100 (a percentage)` })
    .min(0, `${field} must be from 0 to 100 (a percentage)`)
    .max(100, `${field} must be from 0 to 100 (a percentage)`);

/** A whole number of at least `min`. */
const count = (field: string, min: number) =>
  z
    .number({ message: `${field} must be a whole number` })
    .int(`${field} must be a whole number`)
    .min(min, min === 0 ? `${field} must be 0 or more` : `${field} must be at least ${min}`);

/** A duration longer than zero. */
const positiveDuration = (field: string) => duration.refine((ms) => ms > 0, `${field} must be longer than 0, e.g. 30s`);

const loadBalancerSchema = z
  .strictObject({
    /**
     * Default LeastRequest: the less loaded of two endpoints drawn at random (power of two
     * choices). RoundRobin ignores weights; WeightedRoundRobin is nginx's smooth weighted
     * round robin; Random draws in proportion to weight; ConsistentHash maps a header's
     * value to an endpoint on a hash ring.
     */
    policy: z.enum(LB_POLICIES, { message: 'policy must be LeastRequest, RoundRobin, WeightedRoundRobin, Random or ConsistentHash' }).default('LeastRequest'),
    /** Required with ConsistentHash, refused with the other policies. `header` is stored in lower case. */
    consistentHash: z.strictObject({ header: headerName('consistentHash.header') }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.policy === 'ConsistentHash' && v.consistentHash === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['consistentHash'],
        message: 'policy ConsistentHash needs consistentHash: { header: NAME }, the request header whose value picks the endpoint (e.g. x-user-id)',
      });
    }
    if (v.policy !== 'ConsistentHash' && v.consistentHash !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['consistentHash'],
        message: `consistentHash is used only with policy: ConsistentHash (the policy is ${v.policy}): set the policy or remove consistentHash`,
      });
    }
  });

/**
 * Circuit-breaking limits (Envoy's names and defaults), per destination and per calling
 * sidecar. A field left out takes its default; the whole section left out means no limits.
 */
const connectionPoolSchema = z.strictObject({
  /** Connections open to the destination's endpoints together. Default 1024. */
  maxConnections: count('maxConnections', 1).default(1024),
  /** Requests waiting for a connection once maxConnections is reached; 0 = none wait. Default 1024. */
  maxPendingRequests: count('maxPendingRequests', 0).default(1024),
  /** Requests in flight (including retries). Default 1024. */
  maxRequests: count('maxRequests', 1).default(1024),
  /** Retries in flight; 0 = no retries. Default 3. */
  maxRetries: count('maxRetries', 0).default(3),
});

/**
 * Passive health checking: endpoints that fail in a row are ejected from load balancing
 * for a while. Ejection n of an endpoint lasts n × baseEjectionTime, at most
 * maxEjectionTime; n goes down by one for each baseEjectionTime the endpoint spends in
 * service (src/proxy/resilience/outlier-detector.ts).
 */
const outlierDetectionSchema = z
  .strictObject({
    /** 5xx answers or connect failures in a row that eject the endpoint; 0 = off. Default 5. */
    consecutive5xx: count('consecutive5xx', 0).default(5),
    /** 502, 503, 504 or connect failures in a row that eject the endpoint; 0 = off. Default 0. */
    consecutiveGatewayErrors: count('consecutiveGatewayErrors', 0).default(0),
    /** Length of a first ejection, in ms. Default 30s. */
    baseEjectionTime: positiveDuration('baseEjectionTime').default(30_000),
    /** Longest ejection, in ms. Default 300s. */
    maxEjectionTime: positiveDuration('maxEjectionTime').default(300_000),
    /**
     * At most this share of the endpoints is ejected at once, counting the one about to be
     * ejected; but one endpoint may always be ejected when the value is above 0 (Envoy's
     * rule with always_eject_one_host). 0 = never eject. Default 10 (Envoy's).
     */
    maxEjectionPercent: percent('maxEjectionPercent').default(10),
  })
  .superRefine((v, ctx) => {
    if (v.consecutive5xx === 0 && v.consecutiveGatewayErrors === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['consecutive5xx'],
        message: 'consecutive5xx and consecutiveGatewayErrors are both 0, so no endpoint would ever be ejected: set one of them, or remove outlierDetection',
      });
    }
    if (v.maxEjectionTime < v.baseEjectionTime) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxEjectionTime'],
        message: `maxEjectionTime (${formatDuration(v.maxEjectionTime)}) must be at least baseEjectionTime (${formatDuration(v.baseEjectionTime)}): raise it or lower baseEjectionTime`,
      });
    }
  });

/**
 * A cap on retries relative to requests (Linkerd's retry budget): in the last `ttl`,
 * retries may be at most `percent` % of the requests, or `minRetriesPerSecond` × ttl,
 * whichever is more. Absent: the data plane uses the same defaults (20 %, 10/s, 10s).
 */
const retryBudgetSchema = z.strictObject({
  /** Retries as a share of requests in the window, 0 to 100. Default 20. */
  // Above 100 is allowed: a service where most requests need one retry (Linkerd's retryRatio may exceed 1 too).
  percent: z
    .number({ message: 'retryBudget.percent must be a number from 0 to 1000 (retries as a percentage of requests)' })
    .min(0, 'retryBudget.percent must be from 0 to 1000')
    .max(1000, 'retryBudget.percent must be from 0 to 1000')
    .default(20),
  /** Retries per second always allowed, whatever the request volume. Default 10. */
  minRetriesPerSecond: z
    .number({ message: 'minRetriesPerSecond must be a number' })
    .min(0, 'minRetriesPerSecond must be 0 or more')
    .default(10),
  /** The window, in ms: 1s to 60s. Default 10s. */
  ttl: duration.refine((ms) => ms >= 1000 && ms <= 60_000, 'ttl must be from 1s to 60s').default(10_000),
});

/**
 * A local token bucket on the destination's own sidecar: requests above the rate are
 * answered 429. `burst` defaults to requestsPerSecond (at least 1).
 */
const rateLimitSchema = z
  .strictObject({
    /** Sustained rate, requests per second (decimals allowed, e.g. 0.5). Required. */
    requestsPerSecond: z.number({ message: 'requestsPerSecond must be a number, e.g. 100' }).positive('requestsPerSecond must be more than 0'),
    /** Requests that may arrive at once after a quiet period. Default requestsPerSecond (at least 1). */
    burst: z.number({ message: 'burst must be a number' }).min(1, 'burst must be at least 1').optional(),
    /** true: one bucket per caller (SPIFFE ID; plaintext callers by source address). Default false: one bucket for all. */
    perCaller: z.boolean({ message: 'perCaller must be true or false' }).default(false),
  })
  .transform((v) => ({ requestsPerSecond: v.requestsPerSecond, burst: v.burst ?? Math.max(1, v.requestsPerSecond), perCaller: v.perCaller }));

const faultInjectionSchema = z
  .strictObject({
    /** Delay a share of requests by `fixed` ms before they are sent. `percent` defaults to 100. */
    delay: z.strictObject({ fixed: positiveDuration('delay.fixed'), percent: percent('delay.percent').default(100) }).optional(),
    /**
     * Answer a share of requests locally with `status` (200 to 599) instead of sending them;
     * gRPC requests get `grpcStatus` (1 to 16) when given, else `status`. `percent` defaults to 100.
     */
    abort: z
      .strictObject({
        status: z
          .number({ message: 'abort.status must be an HTTP status, e.g. 503' })
          .int('abort.status must be a whole number, e.g. 503')
          .min(200, 'abort.status must be from 200 to 599')
          .max(599, 'abort.status must be from 200 to 599'),
        grpcStatus: z
          .number({ message: 'abort.grpcStatus must be a gRPC status code, e.g. 14 (UNAVAILABLE)' })
          .int('abort.grpcStatus must be a whole number from 1 to 16')
          .min(1, 'abort.grpcStatus must be from 1 to 16 (0 is OK, not a fault)')
          .max(16, 'abort.grpcStatus must be from 1 to 16')
          .optional(),
        percent: percent('abort.percent').default(100),
      })
      .optional(),
    /** Only requests carrying all these headers with exactly these values are faulted. Names are stored in lower case. */
    headers: z
      .array(z.strictObject({ name: headerName('name'), value: z.string({ message: 'value must be a string; quote it, e.g. "1"' }) }))
      .min(1, 'headers needs at least one {name, value}; remove it to fault every request')
      .optional(),
  })
  .superRefine((v, ctx) => {
    if (v.delay === undefined && v.abort === undefined) {
      ctx.addIssue({ code: 'custom', message: 'faultInjection needs delay ({fixed, percent}) or abort ({status, percent}), or both; or remove faultInjection' });
    }
  });

/** A destination's traffic policy (see the module comment and docs/resilience.md). */
export const trafficPolicySchema = z.strictObject({
  /** Absent: LeastRequest. */
  loadBalancer: loadBalancerSchema.optional(),
  /** Absent: no limits. */
  connectionPool: connectionPoolSchema.optional(),
  /** Absent: no endpoint is ejected. */
  outlierDetection: outlierDetectionSchema.optional(),
  /** Absent: the default budget (20 %, 10/s, 10s) still applies to retries. */
  retryBudget: retryBudgetSchema.optional(),
  /** Absent: no rate limit. Enforced by the destination's own sidecar. */
  rateLimit: rateLimitSchema.optional(),
  /** Absent: no faults. */
  faultInjection: faultInjectionSchema.optional(),
});

/** The sections applied by each caller's sidecar (all but rateLimit). */
const CALLER_SECTIONS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'retryBudget', 'faultInjection'] as const;

/**
 * A sidecar's static `upstreams[].trafficPolicy`: the policy its calls to that upstream
 * follow. `rateLimit` is refused (the called service's own sidecar enforces it).
 */
export const upstreamTrafficPolicySchema = trafficPolicySchema.superRefine((v, ctx) => {
  if (v.rateLimit !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['rateLimit'],
      message: "rateLimit is enforced by the called service's own sidecar: move it to that sidecar's inbound.trafficPolicy.rateLimit (or its Service resource)",
    });
  }
});

/**
 * A sidecar's static `inbound.trafficPolicy`: only `rateLimit` (the other sections are
 * applied by the callers' sidecars and are refused here with a message saying so).
 */
export const inboundTrafficPolicySchema = trafficPolicySchema.superRefine((v, ctx) => {
  for (const section of CALLER_SECTIONS) {
    if (v[section] !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [section],
        message: `${section} is applied by each caller's sidecar: set it under upstreams[].trafficPolicy in the callers' configuration (or in the Service resource); inbound.trafficPolicy takes only rateLimit`,
      });
    }
  }
});

/** A validated traffic policy: durations in ms, defaults filled in, header names in lower case. */
export type TrafficPolicyConfig = z.output<typeof trafficPolicySchema>;
/** `loadBalancer`, validated. */
export type LoadBalancerConfig = NonNullable<TrafficPolicyConfig['loadBalancer']>;
/** `connectionPool`, validated: the circuit breaker's limits. */
export type ConnectionPoolConfig = NonNullable<TrafficPolicyConfig['connectionPool']>;
/** `outlierDetection`, validated (times in ms). */
export type OutlierDetectionConfig = NonNullable<TrafficPolicyConfig['outlierDetection']>;
/** `retryBudget`, validated (ttl in ms). */
export type RetryBudgetConfig = NonNullable<TrafficPolicyConfig['retryBudget']>;
/** `rateLimit`, validated (burst filled in). */
export type RateLimitConfig = NonNullable<TrafficPolicyConfig['rateLimit']>;
/** `faultInjection`, validated (delay in ms). */
export type FaultInjectionConfig = NonNullable<TrafficPolicyConfig['faultInjection']>;
