import type { Metric, Registry } from 'prom-client';

/**
 * Per-request counters and duration histograms, kept in plain arrays and exposed through a
 * prom-client registry. prom-client's own Counter and Histogram validate and hash their
 * label set on every `inc`/`observe`, even through a cached child (about 2 µs per request
 * here, a few percent of a sidecar's CPU per request). Here a request costs a WeakMap and
 * a Map lookup (the connection's labels, then the route), a bucket search and three
 * additions; the work of formatting happens when /metrics is scraped.
 */

/** One label set's and route's figures (read by the telemetry reporter; do not change them). */
export interface RequestSeries<L> {
  readonly labels: L;
  readonly route: string;
  /** Requests by status code. */
  readonly codes: Map<number, number>;
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

type Labels = Record<string, string>;

/** `2xx`…`5xx` (1xx: `1xx`; 101 for upgrades). */
export function responseClass(code: number): string {
  return code >= 100 && code < 600 ? `${Math.floor(code / 100)}xx` : 'other';
}

/**
 * A family of request metrics: `<counter>{…labels, route, response_class, code}` and
 * `<histogram>{…labels, route}`, registered in `registry` as two metrics that prom-client
 * formats like its own.
 */
export class RequestMetrics<L extends object> {
  readonly #bounds: readonly number[];
  /** Series by label-set key, then by route. */
  readonly #series = new Map<string, Map<string, RequestSeries<L>>>();
  #byLabels = new WeakMap<L, Map<string, RequestSeries<L>>>();
  readonly #key: (labels: L) => string;

  constructor(options: {
    registry: Registry;
    counter: { name: string; help: string };
    histogram: { name: string; help: string };
    buckets: readonly number[];
    /** A string that identifies a label set (the values joined). */
    key: (labels: L) => string;
  }) {
    this.#bounds = options.buckets;
    this.#key = options.key;
    const { registry, counter, histogram } = options;
    registry.registerMetric(this.#view(counter.name, counter.help, 'counter', () => this.#counterValues()));
    registry.registerMetric(this.#view(histogram.name, histogram.help, 'histogram', () => this.#histogramValues(histogram.name)));
  }

  /** Counts one finished request. `labels` objects are best reused (one per connection); `route` is a bounded name. */
  observe(labels: L, route: string, code: number, seconds: number): void {
    let routes = this.#byLabels.get(labels);
    if (routes === undefined) {
      const key = this.#key(labels);
      routes = this.#series.get(key);
      if (routes === undefined) {
        routes = new Map();
        this.#series.set(key, routes);
      }
      this.#byLabels.set(labels, routes);
    }
    let series = routes.get(route);
    if (series === undefined) {
      series = { labels, route, codes: new Map(), buckets: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      routes.set(route, series);
    }
    series.codes.set(code, (series.codes.get(code) ?? 0) + 1);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    series.buckets[i]!++;
    series.sum += seconds;
    series.count++;
  }

  /** Every series (cumulative figures), for reports that send differences. */
  *series(): IterableIterator<RequestSeries<L>> {
    for (const routes of this.#series.values()) yield* routes.values();
  }

  #counterValues() {
    const values: { labels: Labels; value: number }[] = [];
    for (const s of this.series()) {
      for (const [code, value] of s.codes) {
        values.push({ labels: { ...(s.labels as Labels), route: s.route, response_class: responseClass(code), code: String(code) }, value });
      }
    }
    return values;
  }

  #histogramValues(name: string) {
    const values: { labels: Labels; value: number; metricName: string }[] = [];
    for (const s of this.series()) {
      const labels = { ...(s.labels as Labels), route: s.route };
      let cumulative = 0;
      for (let i = 0; i <= this.#bounds.length; i++) {
        cumulative += s.buckets[i]!;
        const le = i < this.#bounds.length ? String(this.#bounds[i]) : '+Inf';
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${name}_bucket` });
      }
      values.push({ labels, value: s.sum, metricName: `${name}_sum` });
      values.push({ labels, value: s.count, metricName: `${name}_count` });
    }
    return values;
  }

  /**
   * The object the registry formats. prom-client's registry reads `name` and calls `get()`
   * (and `reset()` on `resetMetrics`); this is the shape its own metric classes have.
   */
  #view(name: string, help: string, type: 'counter' | 'histogram', values: () => unknown[]): Metric {
    const view = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: () => Promise.resolve({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => {
        this.#series.clear();
        this.#byLabels = new WeakMap();
      },
    };
    return view as unknown as Metric;
  }
}
