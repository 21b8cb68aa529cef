import type { TestContext } from 'node:test';

/**
 * Lets a test go on (true) when `why` is null; else skips it with the reason, or fails it
 * under CI=true: CI must never pass by skipping (../shared/netns.md).
 */
export function requireOrSkip(t: TestContext, what: string, why: string | null): boolean {
  if (why === null) return true;
  if (process.env['CI'] === 'true') throw new Error(`${what} required under CI: ${why}`);
  t.skip(`${what.replace(/ (is|are)$/, '')} unavailable: ${why}`);
  return false;
}
