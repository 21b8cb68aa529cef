import { parseCsr } from '../pki/csr.js';
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
 * is entitled to, at most `bucket`'s rate (`admit`: 429 with Retry-After beyond), every issuance and
 * refusal written to the audit log. The CSR carries only a public key: keys never leave
 * the sidecars.
 */
export class CsrSigner {
  readonly #issuer: Issuer;
  readonly #ttlMs: number;
  readonly #bucket: TokenBucket;
  readonly #audit: AuditLog;

  constructor(options: { issuer: Issuer; leafTtlMs: number; bucket: TokenBucket; audit: AuditLog }) {
    this.#issuer = options.issuer;
    this.#ttlMs = options.leafTtlMs;
    this.#bucket = options.bucket;
    this.#audit = options.audit;
  }

  /**
   * Takes one signing from the rate limit, or throws a 429 refusal. Called before anything
   * is spent on the request (a join token's use, say).
   */
  admit(request: Pick<SignRequest, 'via' | 'remote'>): void {
    const wait = this.#bucket.take();
    if (wait === 0) return;
    const retryAfter = Math.max(1, Math.ceil(wait / 1000));
    throw this.#refuse({ ...request, allowedSpiffeId: '' }, undefined, new SignRefused(429, 'WEFT_E_RATE_LIMITED', `too many signing requests; retry in ${retryAfter}s`, retryAfter));
  }

  /** Signs `csrPem` if it asks for the caller's own SPIFFE ID (call `admit` first). */
  async sign(csrPem: string, request: SignRequest): Promise<IssuedLeaf> {
    let spiffeId: string | undefined;
    try {
      const csr = parseCsr(csrPem);
      spiffeId = csr.spiffeId;
      if (csr.spiffeId !== request.allowedSpiffeId) {
        throw new SignRefused(403, 'WEFT_E_IDENTITY_MISMATCH', `this caller may only obtain ${request.allowedSpiffeId}, not ${csr.spiffeId}`);
      }
      const leaf = await issueLeaf(this.#issuer, { spiffeId: csr.spiffeId, ttlMs: this.#ttlMs, publicKey: csr.publicKey });
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
    } catch (err) {
      if (err instanceof SignRefused) throw this.#refuse(request, spiffeId, err);
      if (isWeftError(err)) throw this.#refuse(request, spiffeId, new SignRefused(400, err.code, err.message));
      throw err;
    }
  }

  #refuse(request: SignRequest, spiffeId: string | undefined, refusal: SignRefused): SignRefused {
    this.#audit.record({
      event: 'csr.refused',
      via: request.via,
      remote: request.remote,
      ...(spiffeId !== undefined || request.allowedSpiffeId !== '' ? { spiffeId: spiffeId ?? request.allowedSpiffeId } : {}),
      reason: refusal.message,
      ...(request.tokenId !== undefined ? { tokenId: request.tokenId } : {}),
    });
    return refusal;
  }
}
