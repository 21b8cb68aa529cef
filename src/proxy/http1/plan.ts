import type { Cluster } from '../upstream/cluster.js';
import type { CompiledRule, RequestView } from '../route/types.js';
import { applyHeaderEdit } from '../route/header-edit.js';
import type { Forward, HttpRoute } from './exchange.js';
import type { RequestHead } from './head.js';

/** A reply the sidecar makes instead of forwarding (no route, redirect, fault abort…). */
export interface PlannedReply {
  readonly status: number;
  /** The weft-error code; '' for a reply that is not an error (a redirect). */
  readonly code: string;
  readonly message: string;
  readonly location?: string;
}

/** What to do with one HTTP/1 request: reply at once, or forward (after a delay) to a cluster. */
export interface RequestPlan {
  readonly reply: PlannedReply | null;
  readonly forward: Forward;
  /** The head to forward: the request's own, or a copy with the route's rewrite. Header edits are applied to it in place. */
  readonly head: RequestHead;
  /** Fault injection: wait this long before forwarding (ms). */
  readonly delayMs: number;
  /** RequestMirror: a copy goes to this cluster (its answer is dropped). */
  readonly mirror: Cluster | null;
}

/** Reads a parsed request head as the route tables see it. */
class HeadView implements RequestView {
  readonly method: string;
  readonly path: string;
  readonly query: string | null;
  readonly #head: RequestHead;

  constructor(head: RequestHead) {
    this.#head = head;
    this.method = head.method;
    const q = head.target.indexOf('?');
    this.path = q < 0 ? head.target : head.target.slice(0, q);
    this.query = q < 0 ? null : head.target.slice(q + 1);
  }

  header(lowerName: string): string | undefined {
    const { lower, values } = this.#head;
    let found: string | undefined;
    for (let i = 0; i < lower.length; i++) {
      if (lower[i] === lowerName) found = found === undefined ? values[i] : `${found}, ${values[i]}`;
    }
    return found;
  }
}

/**
 * Decides where a request goes: through the listener's routes when it has any (Gateway
 * API semantics: no matching rule is 404, a rule without backends 500, a redirect answers
 * at once; header edits and the URL rewrite are applied to the head), else to the
 * listener's cluster; then the destination's fault injection (an abort answers at once,
 * a delay postpones the forward).
 */
export function planRequest(route: HttpRoute, head: RequestHead, tls: boolean): RequestPlan {
  let cluster = route.cluster;
  let rule: CompiledRule<Cluster> | null = null;
  let out = head;
  let mirror: Cluster | null = null;
  let view: HeadView | null = null;
  if (route.router !== null) {
    view = new HeadView(head);
    rule = route.router.match(view);
    if (rule === null) return replyPlan(route, head, { status: 404, code: 'WEFT_E_NO_ROUTE', message: `no route rule matches ${head.method} ${view.path}` });
    if (rule.redirect !== null) {
      const host = view.header('host') ?? '';
      return replyPlan(route, head, { status: rule.redirect.status, code: '', message: 'redirected', location: rule.redirect.location(view, tls ? 'https' : 'http', host) });
    }
    if (rule.noBackends) return replyPlan(route, head, { status: 500, code: 'WEFT_E_NO_BACKEND', message: `route rule ${rule.name} has no backend to send to` });
    const backend = rule.backends.pick();
    if (backend === null) return replyPlan(route, head, { status: 500, code: 'WEFT_E_NO_BACKEND', message: `route rule ${rule.name} sent this request to a backend that does not exist` });
    cluster = backend;
    if (rule.rewrite !== null) out = rewritten(head, view, rule);
    if (rule.requestHeaders !== null) applyHeaderEdit(rule.requestHeaders, out);
    if (rule.mirror !== null && Math.random() * 100 < rule.mirror.percent) mirror = rule.mirror.backend;
  }
  let delayMs = 0;
  if (cluster.fault !== null) {
    view ??= new HeadView(head);
    const fault = cluster.fault.decide((name) => view!.header(name));
    if (fault !== null) {
      if (fault.abortStatus > 0) return replyPlan(route, head, { status: fault.abortStatus, code: 'WEFT_E_FAULT_ABORT', message: `fault injected: ${cluster.name} answers ${fault.abortStatus} for this share of requests` });
      delayMs = fault.delayMs;
    }
  }
  const hashKey = cluster.hashHeader === null ? null : ((view ??= new HeadView(head)).header(cluster.hashHeader) ?? null);
  return { reply: null, forward: { cluster, rule, hashKey }, head: out, delayMs, mirror };
}

function replyPlan(route: HttpRoute, head: RequestHead, reply: PlannedReply): RequestPlan {
  return { reply, forward: { cluster: route.cluster, rule: null, hashKey: null }, head, delayMs: 0, mirror: null };
}

/** A copy of the head with the rule's URLRewrite applied (path, and Host for a hostname). */
function rewritten(head: RequestHead, view: HeadView, rule: CompiledRule<Cluster>): RequestHead {
  const rewrite = rule.rewrite!;
  const path = rewrite.path(view);
  const target = path === null ? head.target : view.query === null ? path : `${path}?${view.query}`;
  const values = rewrite.hostname === null ? head.values : head.values.slice();
  if (rewrite.hostname !== null) {
    const i = head.lower.indexOf('host');
    if (i >= 0) values[i] = rewrite.hostname;
  }
  return { ...head, target, names: head.names.slice(), lower: head.lower.slice(), values };
}
