import type { AuthorizationRule, AuthorizationSource } from '../../control/resources.js';
import { canonicalPath, canonicalRulePath, pathEnd, readingsOf } from './paths.js';

/**
 * Inbound authorization: AuthorizationPolicy rules compiled once per configuration into
 * sets and arrays, then evaluated per request (HTTP) or per connection (TCP) without
 * allocating on the common path. Semantics: docs/authorization.md.
 */

/** One policy's rules, in order (the server sorts policies by name). */
export interface AuthzPolicyInput {
  readonly name: string;
  readonly rules: readonly AuthorizationRule[];
}

/** The outcome of one check. Decisions are shared objects: never mutate them. */
export interface AuthzDecision {
  readonly allowed: boolean;
  /** Allowed by an `audit` rule: the request would be denied; log and count it. */
  readonly audited: boolean;
  /** `POLICY#INDEX` of the deciding rule, or `default` when no rule matched. */
  readonly rule: string;
}

/** Compiled rules of one inbound listener. */
export interface CompiledAuthz {
  /**
   * HTTP: decision for one request. `caller` is the peer SPIFFE ID, null for plaintext.
   * `target` is the request target as received (the query string is ignored). `header(name)`
   * gets a lower-case header's value (first), or undefined.
   */
  checkRequest(caller: string | null, method: string, target: string, header: (lowerName: string) => string | undefined): AuthzDecision;
  /** TCP: decision for one connection; rules with a `to` (HTTP-only) section never match. */
  checkConnection(caller: string | null): AuthzDecision;
}

interface HeaderCondition {
  readonly name: string;
  readonly exact: string | undefined;
  readonly prefix: string | undefined;
  readonly present: boolean | undefined;
}

interface CompiledRule {
  readonly decision: AuthzDecision;
  /** deny and audit: a path or method in doubt matches (see matchesPaths). */
  readonly refuses: boolean;
  /** `"*"` is a source: everyone, plaintext callers included. */
  readonly anyone: boolean;
  /** Exact SPIFFE IDs ({spiffeId} and {service, namespace}). */
  readonly ids: ReadonlySet<string>;
  /** `spiffe://TD/ns/NS/svc/` for each {namespace} source. */
  readonly namespacePrefixes: readonly string[];
  /** True when `to` sets any condition: such a rule never matches a TCP connection. */
  readonly httpOnly: boolean;
  readonly exactPaths: readonly string[] | null;
  readonly prefixPaths: readonly string[] | null;
  readonly methods: ReadonlySet<string> | null;
  readonly headers: readonly HeaderCondition[] | null;
}

/**
 * Compiles policies into a CompiledAuthz. `policies` are evaluated in the order given and
 * each one's rules in order; the first rule whose sources and `to` match decides; no match
 * means `defaultAction`. `trustDomain` resolves `{service}` and `{namespace}` sources.
 */
export function compileAuthz(input: {
  policies: readonly AuthzPolicyInput[];
  defaultAction: 'allow' | 'deny';
  trustDomain: string;
  protocol: 'http' | 'tcp';
}): CompiledAuthz {
  const rules: CompiledRule[] = [];
  for (const policy of input.policies) {
    policy.rules.forEach((rule, index) => rules.push(compileRule(rule, `${policy.name}#${index}`, input.trustDomain)));
  }
  const fallback = Object.freeze({ allowed: input.defaultAction === 'allow', audited: false, rule: 'default' });
  // TCP listeners never see a request: drop the rules that can only match one.
  return new Rules(input.protocol === 'tcp' ? rules.filter((r) => !r.httpOnly) : rules, fallback);
}

/** A denial as the caller reads it: `denied by policy web-in rule 0`, or the default action. */
export function describeDenial(decision: AuthzDecision): string {
  const hash = decision.rule.lastIndexOf('#');
  if (hash < 0) return 'denied by the default action (no rule allows it)';
  return `denied by policy ${decision.rule.slice(0, hash)} rule ${decision.rule.slice(hash + 1)}`;
}

class Rules implements CompiledAuthz {
  readonly #rules: readonly CompiledRule[];
  readonly #fallback: AuthzDecision;
  /** Some rule looks at paths: the request target's readings are worked out once per request. */
  readonly #paths: boolean;
  readonly #tcpRules: readonly CompiledRule[];

  constructor(rules: readonly CompiledRule[], fallback: AuthzDecision) {
    this.#rules = rules;
    this.#fallback = fallback;
    this.#paths = rules.some((r) => r.exactPaths !== null || r.prefixPaths !== null);
    this.#tcpRules = rules.filter((r) => !r.httpOnly);
  }

  checkRequest(caller: string | null, method: string, target: string, header: (lowerName: string) => string | undefined): AuthzDecision {
    // The path as received up to `?` (no copy), and when it needs normalising, its readings.
    let first = target;
    let firstEnd = 0;
    let second: string | null = null;
    if (this.#paths) {
      firstEnd = pathEnd(target);
      const readings = readingsOf(target, firstEnd);
      if (readings !== null) {
        first = readings.first;
        firstEnd = first.length;
        second = readings.second;
      }
    }
    for (const rule of this.#rules) {
      if (!sourceMatches(rule, caller)) continue;
      if (rule.methods !== null && !rule.methods.has(method) && !(rule.refuses && hasLowerCase(method) && rule.methods.has(method.toUpperCase()))) continue;
      if ((rule.exactPaths !== null || rule.prefixPaths !== null) && !pathMatches(rule, first, firstEnd, second)) continue;
      if (rule.headers !== null && !headersMatch(rule.headers, header)) continue;
      return rule.decision;
    }
    return this.#fallback;
  }

  checkConnection(caller: string | null): AuthzDecision {
    for (const rule of this.#tcpRules) {
      if (sourceMatches(rule, caller)) return rule.decision;
    }
    return this.#fallback;
  }
}

function compileRule(rule: AuthorizationRule, id: string, trustDomain: string): CompiledRule {
  const ids = new Set<string>();
  const namespacePrefixes: string[] = [];
  let anyone = false;
  for (const source of rule.from) {
    const kind = sourceKind(source);
    if (kind.anyone) anyone = true;
    else if (kind.id !== null) ids.add(kind.id);
    else namespacePrefixes.push(`spiffe://${trustDomain}/ns/${kind.namespace}/svc/`);
  }
  function sourceKind(s: AuthorizationSource): { anyone: boolean; id: string | null; namespace: string | null } {
    if (s === '*') return { anyone: true, id: null, namespace: null };
    if ('spiffeId' in s) return { anyone: false, id: s.spiffeId, namespace: null };
    if ('service' in s) return { anyone: false, id: `spiffe://${trustDomain}/ns/${s.namespace ?? 'default'}/svc/${s.service}`, namespace: null };
    return { anyone: false, id: null, namespace: s.namespace };
  }
  const to = rule.to;
  const exact = to?.paths?.flatMap((p) => ('exact' in p ? [canonicalPath(canonicalRulePath(p.exact), false)] : [])) ?? [];
  const prefix = to?.paths?.flatMap((p) => ('prefix' in p ? [canonicalPath(canonicalRulePath(p.prefix), false)] : [])) ?? [];
  return {
    decision: Object.freeze({ allowed: rule.action !== 'deny', audited: rule.action === 'audit', rule: id }),
    refuses: rule.action !== 'allow',
    anyone,
    ids,
    namespacePrefixes,
    httpOnly: to !== undefined && (to.paths !== undefined || to.methods !== undefined || to.headers !== undefined),
    exactPaths: to?.paths === undefined ? null : exact,
    prefixPaths: to?.paths === undefined ? null : prefix,
    methods: to?.methods === undefined ? null : new Set(to.methods),
    headers:
      to?.headers === undefined
        ? null
        : to.headers.map((h) => ({ name: h.name.toLowerCase(), exact: h.exact, prefix: h.prefix, present: h.present })),
  };
}

function sourceMatches(rule: CompiledRule, caller: string | null): boolean {
  if (rule.anyone) return true;
  if (caller === null) return false;
  if (rule.ids.has(caller)) return true;
  for (const prefix of rule.namespacePrefixes) {
    // spiffe://TD/ns/NS/svc/NAME: one more non-empty segment, nothing after it.
    if (caller.length > prefix.length && caller.startsWith(prefix) && caller.indexOf('/', prefix.length) < 0) return true;
  }
  return false;
}

/**
 * Whether the request path satisfies the rule's paths. `first` (up to `firstEnd`) is the
 * path as the app most likely reads it; `second`, when not null, is another reading of an
 * ambiguous path (encoded slashes or backslashes taken as separators). An allow rule must
 * match every reading; a deny or audit rule matches when any reading does.
 */
function pathMatches(rule: CompiledRule, first: string, firstEnd: number, second: string | null): boolean {
  const one = anyPath(rule, first, firstEnd);
  if (second === null) return one;
  return rule.refuses ? one || anyPath(rule, second, second.length) : one && anyPath(rule, second, second.length);
}

function anyPath(rule: CompiledRule, path: string, end: number): boolean {
  if (rule.exactPaths !== null) {
    for (const p of rule.exactPaths) if (end === p.length && path.startsWith(p)) return true;
  }
  if (rule.prefixPaths !== null) {
    for (const p of rule.prefixPaths) if (end >= p.length && path.startsWith(p)) return true;
  }
  return false;
}

/** Whether a method token has a lower-case letter (only then is an upper-case copy made). */
function hasLowerCase(method: string): boolean {
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) return true;
  }
  return false;
}

function headersMatch(conditions: readonly HeaderCondition[], header: (lowerName: string) => string | undefined): boolean {
  for (const c of conditions) {
    const value = header(c.name);
    if (c.present !== undefined) {
      if ((value !== undefined) !== c.present) return false;
    } else if (value === undefined) {
      return false;
    } else if (c.exact !== undefined ? value !== c.exact : !value.startsWith(c.prefix!)) {
      return false;
    }
  }
  return true;
}
