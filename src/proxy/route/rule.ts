import type { BackendRefConfig, GrpcRouteRule, HttpRouteRule, TimeoutsConfig, WeightedBackendRefConfig } from '../../config/route-schema.js';
import { compileHeaderEdit } from './header-edit.js';
import { compilePicker } from './picker.js';
import { compileRedirect, compileRewrite } from './rewrite.js';
import type { CompiledRule, RetryPolicy } from './types.js';

/** Base backoff when `retry.backoff` is not given (ms). */
export const DEFAULT_BACKOFF_MS = 25;

/** What compiling a rule needs besides the rule. */
export interface RuleContext<B> {
  /** The route's namespace: the default namespace of its backendRefs. */
  readonly namespace: string;
  /** The rule's `CompiledRule.name`: `<namespace>/<route>/<rule name or index>`. */
  readonly name: string;
  readonly resolve: (ref: BackendRefConfig) => B | null;
  /** Draws for weighted picking; undefined: the picker's own generator. */
  readonly random: (() => number) | undefined;
}

/**
 * Resolves a ref with the route's namespace filled in when it has none; only the reference
 * fields are passed (not the weight).
 */
export function resolveRef<B>(ref: BackendRefConfig, ctx: Pick<RuleContext<B>, 'namespace' | 'resolve'>): B | null {
  const full: BackendRefConfig = { kind: ref.kind, name: ref.name, namespace: ref.namespace ?? ctx.namespace };
  if (ref.group !== undefined) full.group = ref.group;
  if (ref.port !== undefined) full.port = ref.port;
  if (ref.subset !== undefined) full.subset = ref.subset;
  return ctx.resolve(full);
}

/** Resolves weighted backendRefs into a picker. */
export function compileBackends<B>(refs: readonly WeightedBackendRefConfig[], ctx: Pick<RuleContext<B>, 'namespace' | 'resolve' | 'random'>) {
  return compilePicker(
    refs.map((ref) => ({ backend: resolveRef(ref, ctx), weight: ref.weight })),
    ctx.random,
  );
}

/** Compiles an HTTPRoute rule (its matches are compiled separately, by the router). */
export function compileHttpRule<B>(rule: HttpRouteRule, ctx: RuleContext<B>): CompiledRule<B> {
  // The schema allows ReplacePrefixMatch only with exactly one PathPrefix match.
  const only = rule.matches.length === 1 && rule.matches[0]!.path.type === 'PathPrefix' ? rule.matches[0]!.path.value : null;
  let rewrite = null;
  let redirect = null;
  for (const f of rule.filters) {
    if (f.type === 'URLRewrite') rewrite = compileRewrite(f.urlRewrite, only);
    else if (f.type === 'RequestRedirect') redirect = compileRedirect(f.requestRedirect, only);
  }
  return compileCommon(rule, ctx, rewrite, redirect, httpRetry(rule.retry));
}

/** Compiles a GRPCRoute rule (its matches are compiled separately, by the router). */
export function compileGrpcRule<B>(rule: GrpcRouteRule, ctx: RuleContext<B>): CompiledRule<B> {
  const retry = rule.retry;
  const policy: RetryPolicy | null =
    retry === undefined || retry.attempts === 0
      ? null
      : Object.freeze({ attempts: retry.attempts, codes: new Set<number>(), grpcCodes: new Set(retry.codes), backoffMs: retry.backoff ?? DEFAULT_BACKOFF_MS });
  return compileCommon(rule, ctx, null, null, policy);
}

function httpRetry(retry: HttpRouteRule['retry']): RetryPolicy | null {
  if (retry === undefined || retry.attempts === 0) return null;
  return Object.freeze({ attempts: retry.attempts, codes: new Set(retry.codes), grpcCodes: new Set<number>(), backoffMs: retry.backoff ?? DEFAULT_BACKOFF_MS });
}

type CommonRule = Pick<HttpRouteRule | GrpcRouteRule, 'backendRefs' | 'timeouts'> & { readonly filters: readonly (HttpRouteRule['filters'][number] | GrpcRouteRule['filters'][number])[] };

function compileCommon<B>(rule: CommonRule, ctx: RuleContext<B>, rewrite: CompiledRule<B>['rewrite'], redirect: CompiledRule<B>['redirect'], retry: RetryPolicy | null): CompiledRule<B> {
  let requestHeaders = null;
  let responseHeaders = null;
  let mirror: CompiledRule<B>['mirror'] = null;
  for (const f of rule.filters) {
    if (f.type === 'RequestHeaderModifier') requestHeaders = compileHeaderEdit(f.requestHeaderModifier);
    else if (f.type === 'ResponseHeaderModifier') responseHeaders = compileHeaderEdit(f.responseHeaderModifier);
    else if (f.type === 'RequestMirror') {
      // An unresolved mirror backend mirrors nothing (Gateway API: the route's refs are not resolved).
      const backend = resolveRef(f.requestMirror.backendRef, ctx);
      if (backend !== null && f.requestMirror.percent > 0) mirror = Object.freeze({ backend, percent: f.requestMirror.percent });
    }
  }
  const backends = compileBackends(rule.backendRefs, ctx);
  return Object.freeze({
    name: ctx.name,
    backends,
    noBackends: backends.totalWeight === 0,
    requestHeaders,
    responseHeaders,
    rewrite,
    redirect,
    mirror,
    requestTimeoutMs: timeoutMs(rule.timeouts, 'request'),
    backendTimeoutMs: timeoutMs(rule.timeouts, 'backendRequest'),
    retry,
  });
}

/** A timeout in ms, or null when absent or `0s` (disabled, as Gateway API says). */
function timeoutMs(timeouts: TimeoutsConfig | undefined, field: 'request' | 'backendRequest'): number | null {
  const ms = timeouts?.[field];
  return ms === undefined || ms === 0 ? null : ms;
}
