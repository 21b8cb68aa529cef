import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { WeftError } from '../errors.js';
import { RESERVED_NAMESPACE } from '../config/names.js';
import type { Store, StoredResource } from './store/store.js';
import { StoreConflictError } from './store/errors.js';

/**
 * Join tokens: a secret that lets one sidecar of one service enroll (have its first CSR
 * signed). The store keeps only the secret's SHA-256, the service it is for, its expiry
 * and how many uses are left, as a `JoinToken` resource in the `weft-system` namespace.
 * A token reads `wft.<id>.<secret>.<pin>`: the id names the resource, the secret proves
 * it, and the pin (of the server's CA, see pki/pin.ts) lets the sidecar check the server
 * before it trusts it. The pin is public and optional on the way in.
 */

export const TOKEN_NAMESPACE = RESERVED_NAMESPACE;
const KIND = 'JoinToken';
const PREFIX = 'wft';

/** What a valid token lets its holder enroll as. */
export interface TokenGrant {
  readonly tokenId: string;
  readonly service: string;
  readonly namespace: string;
}

interface TokenSpec {
  readonly service: string;
  readonly namespace: string;
  readonly secretSha256: string;
  readonly expiresAt: string;
  /** Uses left, or null for unlimited. */
  readonly usesLeft: number | null;
}

/** Why a token was refused: 401 for the caller, the reason for the audit log. */
export class TokenRefused extends WeftError {
  readonly tokenId: string | undefined;
  constructor(reason: string, tokenId?: string) {
    super('WEFT_E_TOKEN', reason);
    this.tokenId = tokenId;
  }
}

export class JoinTokens {
  readonly #store: Store;
  readonly #now: () => Date;

  constructor(store: Store, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#now = now;
  }

  /** Creates a token for `service` in `namespace`, valid for `ttlMs`, for `uses` enrollments (null: unlimited). */
  async create(options: { service: string; namespace: string; ttlMs: number; uses: number | null }): Promise<{ token: string; tokenId: string; expiresAt: Date }> {
    const tokenId = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = new Date(this.#now().getTime() + options.ttlMs);
    const spec: TokenSpec = {
      service: options.service,
      namespace: options.namespace,
      secretSha256: sha256(secret),
      expiresAt: expiresAt.toISOString(),
      usesLeft: options.uses,
    };
    await this.#store.put({ kind: KIND, namespace: TOKEN_NAMESPACE, name: tokenId, spec: { ...spec } }, { expectedRevision: 0 });
    return { token: `${PREFIX}.${tokenId}.${secret}`, tokenId, expiresAt };
  }

  /**
   * Spends one use of `token` and returns what it grants. Throws TokenRefused (malformed,
   * unknown, wrong secret, expired, used up). Concurrent uses of a token with one use left
   * cannot both succeed: the decrement is a compare-and-set on the resource's revision.
   */
  async consume(token: string): Promise<TokenGrant> {
    const parts = token.split('.');
    if ((parts.length !== 3 && parts.length !== 4) || parts[0] !== PREFIX || !/^[0-9a-f]{16}$/.test(parts[1]!) || parts[2] === '') {
      throw new TokenRefused('the join token is malformed (expected wft.<id>.<secret>.<pin>, as `weft token create` prints it)');
    }
    const [, tokenId, secret] = parts as [string, string, string];
    for (let attempt = 0; attempt < 10; attempt++) {
      const stored = await this.#store.get(KIND, TOKEN_NAMESPACE, tokenId);
      if (stored === undefined) throw new TokenRefused('unknown join token (revoked, or from another server)', tokenId);
      const spec = stored.spec as unknown as TokenSpec;
      const expected = Buffer.from(spec.secretSha256, 'hex');
      const actual = Buffer.from(sha256(secret), 'hex');
      if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw new TokenRefused('the join token secret is wrong', tokenId);
      if (Date.parse(spec.expiresAt) <= this.#now().getTime()) throw new TokenRefused(`the join token expired at ${spec.expiresAt}; create a new one with \`weft token create\``, tokenId);
      if (spec.usesLeft === 0) throw new TokenRefused('the join token has been used up; create a new one with `weft token create`', tokenId);
      try {
        await this.#spend(stored, spec);
      } catch (err) {
        if (err instanceof StoreConflictError) continue; // used concurrently: read it again
        throw err;
      }
      return { tokenId, service: spec.service, namespace: spec.namespace };
    }
    throw new TokenRefused('the join token is being used by many enrollments at once; retry', tokenId);
  }

  /** Deletes a token (it can no longer enroll anyone); false when there is none. */
  revoke(tokenId: string): Promise<boolean> {
    return this.#store.delete(KIND, TOKEN_NAMESPACE, tokenId);
  }

  async #spend(stored: StoredResource, spec: TokenSpec): Promise<void> {
    if (spec.usesLeft === null) return;
    await this.#store.put({ kind: KIND, namespace: TOKEN_NAMESPACE, name: stored.name, spec: { ...spec, usesLeft: spec.usesLeft - 1 } }, { expectedRevision: stored.revision });
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
