/** Service and namespace names: DNS labels (lowercase letters, digits and '-', at most 63 characters). */
export const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** What is wrong with a service or namespace name, or null when it is fine. */
export function nameProblem(what: string, value: string): string | null {
  return NAME.test(value) ? null : `${what} must be lowercase letters, digits and '-' (DNS label, at most 63 characters), got "${value}"`;
}

/** The control plane's own namespace: its identity, join tokens and the Mesh resource live there. */
export const RESERVED_NAMESPACE = 'weft-system';
