import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { RequestMetrics } from '../../src/obs/request-metrics.js';
import { DURATION_BUCKETS } from '../../src/control/telemetry-wire.js';

interface Hop {
  readonly direction: string;
  readonly service: string;
  readonly peer: string;
  readonly tls: string;
}

test('request metrics are exposed exactly as prom-client exposes the same observations', async () => {
  const ours = new Registry();
  const metrics = new RequestMetrics<Hop>({
    registry: ours,
    counter: { name: 'x_requests_total', help: 'Requests.' },
    histogram: { name: 'x_duration_seconds', help: 'Duration.' },
    buckets: DURATION_BUCKETS,
    key: (h) => `${h.direction}\0${h.service}\0${h.peer}\0${h.tls}`,
  });
  const reference = new Registry();
  const counter = new Counter({ name: 'x_requests_total', help: 'Requests.', labelNames: ['direction', 'service', 'peer', 'tls', 'route', 'response_class', 'code'], registers: [reference] });
  const histogram = new Histogram({ name: 'x_duration_seconds', help: 'Duration.', labelNames: ['direction', 'service', 'peer', 'tls', 'route'], buckets: [...DURATION_BUCKETS], registers: [reference] });

  const a: Hop = { direction: 'inbound', service: 'api', peer: 'spiffe://example.org/ns/default/svc/web', tls: 'true' };
  const b: Hop = { direction: 'outbound', service: 'db', peer: 'unknown', tls: 'false' };
  const aAgain: Hop = { ...a }; // another connection with the same labels: the same series
  const samples: [Hop, string, number, number][] = [
    [a, '-', 200, 0.00005],
    [a, '-', 200, 0.0001], // on a bucket bound: counted in that bucket (le is inclusive)
    [aAgain, '-', 503, 0.0031],
    [aAgain, 'default/canary/0', 503, 0.0031], // another route of the same hop: its own series
    [b, '-', 200, 12],
    [b, '-', 404, 45], // beyond the last bound: +Inf only
    [a, 'default/canary/0', 200, 0.7],
  ];
  for (const [hop, route, code, seconds] of samples) {
    metrics.observe(hop, route, code, seconds);
    counter.inc({ ...hop, route, response_class: `${String(code)[0]}xx`, code: String(code) });
    histogram.observe({ ...hop, route }, seconds);
  }
  assert.deepEqual(
    [...metrics.series()].map((s) => [s.labels.service, s.route, s.count]),
    [['api', '-', 3], ['api', 'default/canary/0', 2], ['db', '-', 2]],
  );
  const sorted = (text: string) => text.split('\n').filter((l) => l !== '').sort();
  assert.deepEqual(sorted(await ours.metrics()), sorted(await reference.metrics()));

  ours.resetMetrics();
  metrics.observe(a, '-', 200, 0.001);
  const after = await ours.metrics();
  assert.match(after, /^x_requests_total\{direction="inbound",service="api",peer="spiffe:\/\/example.org\/ns\/default\/svc\/web",tls="true",route="-",response_class="2xx",code="200"\} 1$/m);
  assert.match(after, /^x_duration_seconds_count\{[^}]*\} 1$/m);
});
