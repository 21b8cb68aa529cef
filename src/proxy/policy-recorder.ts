import type { Logger } from '../obs/log.js';
import type { PolicyCounters } from '../obs/metrics.js';
import type { AuthzDecision } from './authz/authz.js';
import type { ConnectionInfo } from './connection-info.js';

/** Longest request target written to a log line. */
const MAX_LOGGED_TARGET = 200;

/** At most one line per period: `open` is set again by the listener's once-a-second sweep. */
class Sample {
  open = true;
  suppressed = 0;

  /** Whether to log this event; when not, it is counted as suppressed. */
  take(): boolean {
    if (this.open) {
      this.open = false;
      return true;
    }
    this.suppressed++;
    return false;
  }
}

/**
 * Counts a listener's authorization decisions and strict dry-run pass-throughs, and logs
 * them sampled: at most one line per second for each of denials, audits and dry-run
 * events, each line saying how many were not logged since the previous one. No timer of
 * its own: `tick` is called by the listener's sweep.
 */
export class PolicyRecorder {
  readonly counters: PolicyCounters;
  readonly #log: Logger | null;
  readonly #deny = new Sample();
  readonly #audit = new Sample();
  readonly #dryRun = new Sample();

  constructor(counters: PolicyCounters, log: Logger | null) {
    this.counters = counters;
    this.#log = log;
  }

  /** A request or connection allowed by a rule or the default action. */
  allowed(): void {
    this.counters.allow++;
  }

  /** A request (method and target given) or a connection (null) refused by the rules. */
  denied(info: ConnectionInfo, decision: AuthzDecision, method: string | null, target: string | null): void {
    this.counters.deny++;
    if (this.#log !== null && this.#deny.take()) {
      this.#log.info(this.#fields(info, decision, method, target, this.#deny), method === null ? 'authorization denied a connection' : 'authorization denied a request');
    }
  }

  /** Allowed by an audit rule: it would be denied. */
  audited(info: ConnectionInfo, decision: AuthzDecision, method: string | null, target: string | null): void {
    this.counters.audit++;
    if (this.#log !== null && this.#audit.take()) {
      this.#log.info(this.#fields(info, decision, method, target, this.#audit), 'authorization audit: this would be denied');
    }
  }

  /** A plaintext request or connection a strict dry run lets through. */
  strictDryRun(info: ConnectionInfo, method: string | null, target: string | null): void {
    this.counters.dryRun++;
    if (this.#log !== null && this.#dryRun.take()) {
      this.#log.info(this.#fields(info, null, method, target, this.#dryRun), 'strict mode would refuse this plaintext caller');
    }
  }

  /** Called about once a second: each kind may log one more line. */
  tick(): void {
    this.#deny.open = true;
    this.#audit.open = true;
    this.#dryRun.open = true;
  }

  #fields(info: ConnectionInfo, decision: AuthzDecision | null, method: string | null, target: string | null, sample: Sample): Record<string, unknown> {
    const suppressed = sample.suppressed;
    sample.suppressed = 0;
    return {
      service: info.hop.service,
      caller: info.peer.spiffeId ?? 'plaintext',
      address: info.remoteAddress,
      ...(decision !== null && { rule: decision.rule }),
      ...(method !== null && { method, target: target !== null && target.length > MAX_LOGGED_TARGET ? `${target.slice(0, MAX_LOGGED_TARGET)}…` : target }),
      notLoggedSincePrevious: suppressed,
    };
  }
}
