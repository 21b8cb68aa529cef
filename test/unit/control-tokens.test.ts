import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/control/store/sqlite-store.js';
import { JoinTokens, TokenRefused } from '../../src/control/tokens.js';
import { TokenBucket } from '../../src/control/rate-limit.js';

test('join tokens: scoped, counted, expiring, and a last use cannot be spent twice at once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-tokens-'));
  const store = SqliteStore.open({ dataDir: dir });
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  let now = new Date('2026-01-01T00:00:00Z');
  const tokens = new JoinTokens(store, () => now);

  const one = await tokens.create({ service: 'web', namespace: 'shop', ttlMs: 60_000, uses: 1 });
  const results = await Promise.allSettled([tokens.consume(one.token), tokens.consume(one.token), tokens.consume(one.token)]);
  const granted = results.filter((r) => r.status === 'fulfilled');
  assert.equal(granted.length, 1, 'one use, one enrollment');
  assert.deepEqual((granted[0] as PromiseFulfilledResult<unknown>).value, { tokenId: one.tokenId, service: 'web', namespace: 'shop' });
  for (const r of results.filter((x) => x.status === 'rejected')) {
    assert.ok((r as PromiseRejectedResult).reason instanceof TokenRefused);
    assert.match(String((r as PromiseRejectedResult).reason.message), /used up/);
  }

  const many = await tokens.create({ service: 'api', namespace: 'default', ttlMs: 60_000, uses: null });
  for (let i = 0; i < 5; i++) assert.equal((await tokens.consume(many.token)).service, 'api');
  now = new Date(now.getTime() + 60_001);
  await assert.rejects(tokens.consume(many.token), /expired/);

  await assert.rejects(tokens.consume('wft.0123456789abcdef.secret'), /unknown join token/);
  await assert.rejects(tokens.consume(`${many.token}x`), /secret is wrong/);
  await assert.rejects(tokens.consume('nonsense'), /malformed/);
});

test('the token bucket allows its burst, then one per 1/rate, and says how long to wait', () => {
  let now = 0;
  const bucket = new TokenBucket(2, 2, () => now);
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 500, 'empty: the next token comes in 500 ms at 2/s');
  now = 499;
  assert.ok(bucket.take() > 0);
  now = 1000;
  assert.equal(bucket.take(), 0);
  now = 10_000;
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 0);
  assert.ok(bucket.take() > 0, 'saving up stops at the burst');
});
