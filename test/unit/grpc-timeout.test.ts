import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatGrpcTimeout, parseGrpcTimeout } from '../../src/proxy/http2/grpc-timeout.js';

test('grpc-timeout: every unit parses to milliseconds', () => {
  assert.equal(parseGrpcTimeout('2H'), 7_200_000);
  assert.equal(parseGrpcTimeout('3M'), 180_000);
  assert.equal(parseGrpcTimeout('5S'), 5_000);
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  assert.equal(parseGrpcTimeout('0m'), 0);
  assert.equal(parseGrpcTimeout('99999999S'), 99_999_999_000, 'eight digits is the most allowed');
  assert.equal(parseGrpcTimeout('00000001m'), 1, 'leading zeros are digits');
});

test('grpc-timeout: malformed values are ignored (null)', () => {
  for (const bad of [undefined, '', 'm', '5', '5s', '5 S', ' 5S', '5S ', '-5S', '+5S', '1.5S', '123456789m', '5Sm', 'S5', '５S', '0x5S']) {
    assert.equal(parseGrpcTimeout(bad), null, JSON.stringify(bad));
  }
});

test('grpc-timeout: formatting picks the finest unit that fits in 8 digits and rounds up', () => {
  assert.equal(formatGrpcTimeout(250), '250000u');
  assert.equal(formatGrpcTimeout(0.0004), '1u', 'a positive remainder never rounds to zero');
  assert.equal(formatGrpcTimeout(0), '0u');
  assert.equal(formatGrpcTimeout(-5), '0u', 'a deadline already past is sent as zero');
  assert.equal(formatGrpcTimeout(99_999.999), '99999999u');
  assert.equal(formatGrpcTimeout(100_000), '100000m');
  assert.equal(formatGrpcTimeout(99_999_999), '99999999m');
  assert.equal(formatGrpcTimeout(100_000_000), '100000S');
  assert.equal(formatGrpcTimeout(1e12), '16666667M');
  assert.equal(formatGrpcTimeout(1e20), '99999999H', 'capped at 8 digits of hours');
});

test('grpc-timeout: format then parse keeps at least the time given, within one unit', () => {
  for (const ms of [0.001, 1, 7.5, 999, 1_000, 30_000, 100_000, 3_600_000, 86_400_000, 123_456_789]) {
    const text = formatGrpcTimeout(ms);
    assert.match(text, /^\d{1,8}[HMSmun]$/, text);
    const back = parseGrpcTimeout(text)!;
    const unit = parseGrpcTimeout(`1${text.at(-1)}`)!;
    assert.ok(back >= ms - 1e-9 && back - ms < unit + 1e-9, `${ms} → ${text} → ${back}`);
  }
});
