import type { CertificateRequest } from '../pki/csr.js';
import { issueLeaf, type IssuedLeaf, type Issuer } from '../pki/issuer.js';
import { isWeftError } from '../errors.js';
import type { AuditLog } from './audit.js';
import type { TokenBucket } from './rate-limit.js';

/** A refusal with the HTTP status the API answers with. */
export class SignRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Who is asking, for the decision and the audit log. */
export interface SignRequest {
  /** The only SPIFFE ID this caller may have signed (from its join token or its certificate). */
  readonly allowedSpiffeId: string;
  readonly via: 'join-token' | 'certificate';
  readonly remote: string | undefined;
  readonly tokenId?: string;
}

/**
 * Signs CSRs with the control plane's intermediate: only for the one SPIFFE ID the caller
 * is entitled to, at a bounded rate per way in (`admit`: 429 with Retry-After beyond;
 * enrollment, which anyone can attempt, has its own bucket so it cannot starve renewals),
 * every issuance and refusal after admission written to the audit log. The CSR carries only
 * a public key: keys never leave the sidecars.
 */
export class CsrSigner {
  readonly #issuer: Issuer;
  readonly #ttlMs: number;
  readonly #buckets: Readonly<Record<SignRequest['via'], TokenBucket>>;
  readonly #audit: AuditLog;
  readonly #count: (via: SignRequest['via'], result: 'signed' | 'refused') => void;

  /** `count`: told of every outcome (the `weft_server_csr_total` metric), rate-limit refusals included. */
  constructor(options: { issuer: Issuer; leafTtlMs: number; buckets: Readonly<Record<SignRequest['via'], TokenBucket>>; audit: AuditLog; count?: (via: SignRequest['via'], result: 'signed' | 'refused') => void }) {
    this.#issuer = options.issuer;
    this.#ttlMs = options.leafTtlMs;
    this.#buckets = options.buckets;
    this.#audit = options.audit;
    this.#count = options.count ?? (() => {});
  }

  /**
   * Takes one signing from the rate limit of `via`, or throws a 429 refusal. Called before
   * anything is spent on the request (a join token's use, say). Not audited: a flood of
   * refused attempts must not become a flood of disk writes.
   */
  admit(via: SignRequest['via']): void {
    const wait = this.#buckets[via].take();
    if (wait === 0) return;
    this.#count(via, 'refused');
    const retryAfter = Math.max(1, Math.ceil(wait / 1000));
    throw new SignRefused(429, 'WEFT_E_RATE_LIMITED', `too many signing requests; retry in ${retryAfter}s`, retryAfter);
  }

  /** Signs `csr` (parsed and verified) if it asks for the caller's own SPIFFE ID (call `admit` first). */
  async sign(csr: CertificateRequest, request: SignRequest): Promise<IssuedLeaf> {
    if (csr.spiffeId !== request.allowedSpiffeId) {
      throw this.#refuse(request, csr.spiffeId, new SignRefused(403, 'WEFT_E_IDENTITY_MISMATCH', `this caller may only obtain ${request.allowedSpiffeId}, not ${csr.spiffeId}`));
    }
    let leaf: IssuedLeaf;
    try {
      leaf = await issueLeaf(this.#issuer, { spiffeId: csr.spiffeId, ttlMs: this.#ttlMs, publicKey: csr.publicKey });
    } catch (err) {
      if (isWeftError(err)) throw this.#refuse(request, csr.spiffeId, new SignRefused(400, err.code, err.message));
      throw err;
    }
    this.#count(request.via, 'signed');
    this.#audit.record({
      event: 'csr.signed',
      via: request.via,
      remote: request.remote,
      spiffeId: leaf.spiffeId,
      serial: leaf.serial,
      notAfter: leaf.notAfter.toISOString(),
      ...(request.tokenId !== undefined ? { tokenId: request.tokenId } : {}),
    });
    return leaf;
  }

  #refuse(request: SignRequest, spiffeId: string, refusal: SignRefused): SignRefused {
    this.#count(request.via, 'refused');
    this.#audit.record({
      event: 'csr.refused',
      via: request.via,
      remote: request.remote,
      spiffeId,
      reason: refusal.message,
      ...(request.tokenId !== undefined ? { tokenId: request.tokenId } : {}),
    });
    return refusal;
  }
}
