// The pages: each has `load(get, params)` (the API calls of one refresh) and `view` (renders what load returned).
import { html } from './html.js';
import { TopologyGraph } from './graph.js';
import { bytes, duration, millis, mtlsText, percent, rate, timeLeft } from './format.js';

const WINDOW = '10s';
const DAY_MS = 86_400_000;

function healthText(s) {
  if (s.instances === 0) return 'no instances';
  return `${s.passing}/${s.instances} passing`;
}

function healthClass(s) {
  return s.instances === 0 ? 'none' : s.passing === s.instances ? 'passing' : s.passing === 0 ? 'critical' : 'degraded';
}

function serviceHref(namespace, service) {
  return `#/service/${encodeURIComponent(namespace)}/${encodeURIComponent(service)}`;
}

function EdgeTable({ edges, caption }) {
  if (edges.length === 0) return html`<p class="muted">${caption}: none in the last ${WINDOW}.</p>`;
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr><th>from</th><th>to</th><th>protocol</th><th>security</th><th>rate</th><th>success</th><th>p50</th><th>p99</th></tr></thead>
    <tbody>${edges.map((e) => html`<tr key=${`${e.source}-${e.destination}-${e.protocol}-${e.tls}`} data-testid=${`row-edge-${e.source}-${e.destination}${e.protocol === 'tcp' ? '-tcp' : ''}`}>
      <td>${e.source}</td><td>${e.destination}</td><td>${e.protocol}</td>
      <td class=${e.tls ? 'tls' : 'plaintext'}>${e.tls ? 'mTLS' : 'plaintext'}</td>
      <td>${e.protocol === 'tcp' ? `${rate(e.connectionsPerSecond)} conn/s · ${bytes(e.bytesPerSecond)}/s` : `${rate(e.requestsPerSecond)} rps`}</td>
      <td>${e.protocol === 'tcp' ? '' : percent(e.successRate)}</td><td>${e.protocol === 'tcp' ? '' : millis(e.p50Ms)}</td><td>${e.protocol === 'tcp' ? '' : millis(e.p99Ms)}</td>
    </tr>`)}</tbody>
  </table>`;
}

/** Overview: the services table and the topology graph. */
export const overview = {
  title: 'Overview',
  load: async (get) => ({ topology: await get(`/v1/topology?window=${WINDOW}`) }),
  view: ({ data }) => {
    const t = data.topology;
    return html`<section>
      <h2>Topology <span class="muted">(last ${t.windowSeconds}s)</span></h2>
      <div class="graph-box"><${TopologyGraph} services=${t.services} edges=${t.edges} /></div>
      <p class="legend"><span class="tls">solid grey, lock: mutual TLS</span> · <span class="plaintext">dashed red: plaintext</span> · HTTP: requests/s · success · p50 · p99; TCP: connections/s · bytes/s</p>
    </section>
    <section>
      <h2>Services</h2>
      <table data-testid="services">
        <thead><tr><th>namespace</th><th>service</th><th>instances</th><th>health</th><th>mTLS mode</th></tr></thead>
        <tbody>${t.services.map((s) => html`<tr key=${`${s.namespace}/${s.service}`} data-testid=${`service-${s.namespace}-${s.service}`}>
          <td>${s.namespace}</td><td><a href=${serviceHref(s.namespace, s.service)}>${s.service}</a></td><td>${s.instances}</td>
          <td class=${healthClass(s)}>${healthText(s)}</td><td>${mtlsText(s.mtls)}</td>
        </tr>`)}</tbody>
      </table>
    </section>`;
  },
};

/** Routes whose parentRefs name the service (a parentRef without namespace means the route's own). */
function attached(items, namespace, service) {
  return items.filter((r) => (r.spec.parentRefs ?? []).some((p) => p.name === service && (p.namespace ?? r.namespace) === namespace));
}

function ResourceList({ items, empty }) {
  if (items.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<ul class="resources">${items.map((r) => html`<li key=${`${r.kind}/${r.namespace}/${r.name}`}>
    <details><summary><strong>${r.kind}</strong> ${r.namespace}/${r.name} <span class="muted">(revision ${r.revision})</span></summary>
      <pre>${JSON.stringify(r.spec, null, 2)}</pre></details>
  </li>`)}</ul>`;
}

/** One service: instances, mTLS and the migration verdict, routes, policies, traffic policy, edges. */
export const service = {
  title: 'Service',
  load: async (get, [namespace, name]) => {
    const ns = encodeURIComponent(namespace);
    const [topology, catalog, migration, services, policies, ...routes] = await Promise.all([
      get(`/v1/topology?window=${WINDOW}`),
      get('/v1/catalog/services'),
      get(`/v1/migration?service=${encodeURIComponent(name)}&namespace=${ns}`).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
      get(`/v1/resources/Service?namespace=${ns}`),
      get(`/v1/resources/AuthorizationPolicy?namespace=${ns}`),
      ...['HTTPRoute', 'GRPCRoute', 'TCPRoute'].map((k) => get(`/v1/resources/${k}`)),
    ]);
    return { namespace, name, topology, catalog, migration, services, policies, routes };
  },
  view: ({ data: d }) => {
    const entry = d.catalog.services.find((s) => s.namespace === d.namespace && s.service === d.name);
    const instances = entry ? entry.instances : [];
    const summary = d.topology.services.find((s) => s.namespace === d.namespace && s.service === d.name);
    const verdict = d.migration ? d.migration.services.find((s) => s.namespace === d.namespace && s.service === d.name) : undefined;
    const resource = d.services.items.find((r) => r.name === d.name);
    const policies = d.policies.items.filter((p) => p.spec.targetRef.name === d.name);
    const routes = d.routes.flatMap((r) => attached(r.items, d.namespace, d.name));
    const into = d.topology.edges.filter((e) => e.destination === d.name);
    const out = d.topology.edges.filter((e) => e.source === d.name);
    return html`<h2 data-testid="service-title">${d.namespace}/${d.name}</h2>
    <section class="facts">
      <dl>
        <dt>instances</dt><dd data-testid="service-health">${summary ? healthText(summary) : `${instances.length} registered`}</dd>
        <dt>mTLS mode</dt><dd data-testid="service-mtls">${verdict ? verdict.mode : mtlsText(summary?.mtls)}</dd>
        <dt>migration</dt><dd data-testid="service-verdict" class=${verdict ? (verdict.ready ? 'passing' : 'degraded') : ''}>${verdict ? verdict.verdict : 'unknown (no Service resource, registration or callers yet)'}</dd>
        ${verdict && html`<dt>callers (window)</dt><dd>${verdict.mtlsCallers} mTLS, ${verdict.plaintextCallers} plaintext${verdict.wouldReject > 0 ? `, ${verdict.wouldReject} strict would refuse` : ''}</dd>`}
      </dl>
    </section>
    <section>
      <h3>Instances</h3>
      ${instances.length === 0 ? html`<p class="muted">No registered instance.</p>` : html`<table>
        <thead><tr><th>id</th><th>address</th><th>health</th><th>last report</th></tr></thead>
        <tbody>${instances.map((i) => html`<tr key=${i.id}><td>${i.id}</td><td>${i.address}:${i.port}</td>
          <td class=${i.health === 'passing' ? 'passing' : 'critical'}>${i.health}${i.reason ? ` (${i.reason})` : ''}</td>
          <td>${i.lastReportMsAgo === null ? '–' : `${duration(i.lastReportMsAgo)} ago`}</td></tr>`)}</tbody>
      </table>`}
    </section>
    <section>
      <h3>Traffic</h3>
      <${EdgeTable} edges=${into} caption="Calls in" />
      <${EdgeTable} edges=${out} caption="Calls out" />
    </section>
    <section>
      <h3>Routes attached</h3>
      <${ResourceList} items=${routes} empty="No HTTPRoute, GRPCRoute or TCPRoute names this service in its parentRefs." />
      <h3>Traffic policy</h3>
      ${resource && resource.spec.trafficPolicy ? html`<pre data-testid="traffic-policy">${JSON.stringify(resource.spec.trafficPolicy, null, 2)}</pre>` : html`<p class="muted">${resource ? 'Its Service resource sets no trafficPolicy.' : 'No Service resource: defaults apply.'}</p>`}
      <h3>Authorization policies</h3>
      <${ResourceList} items=${policies} empty="No AuthorizationPolicy targets this service (the Mesh's default action applies)." />
    </section>`;
  },
};

/** Certificates: the CA chain and every sidecar's certificate, with time left. */
export const certificates = {
  title: 'Certificates',
  load: async (get) => ({ certs: await get('/v1/certificates'), now: Date.now() }),
  view: ({ data }) => {
    const row = (key, cells, notAfter) => {
      const left = Date.parse(notAfter) - data.now;
      const cls = left <= 0 ? 'expired' : left < DAY_MS ? 'soon' : '';
      return html`<tr key=${key} class=${cls}>${cells}<td>${new Date(notAfter).toISOString().replace(/\.\d{3}Z$/, 'Z')}</td>
        <td data-testid="time-left">${timeLeft(left)}${cls === 'soon' ? ' (less than 24 h)' : ''}</td></tr>`;
    };
    const { ca, sidecars } = data.certs;
    return html`<section>
      <h2>Certificate authority</h2>
      <table data-testid="ca">
        <thead><tr><th>role</th><th>subject</th><th>expires</th><th>time left</th></tr></thead>
        <tbody>${ca.map((c, i) => row(`ca-${i}`, html`<td>${c.role}</td><td>${c.subject}</td>`, c.notAfter))}</tbody>
      </table>
    </section>
    <section>
      <h2>Sidecar certificates</h2>
      ${sidecars.length === 0 ? html`<p class="muted">No sidecar has reported its certificate yet.</p>` : html`<table data-testid="sidecar-certificates">
        <thead><tr><th>service</th><th>instance</th><th>SPIFFE ID</th><th>expires</th><th>time left</th></tr></thead>
        <tbody>${sidecars.map((s) => row(`${s.spiffeId}-${s.instance}`, html`<td><a href=${serviceHref(s.namespace, s.service)}>${s.namespace}/${s.service}</a></td><td>${s.instance ?? '–'}</td><td>${s.spiffeId}</td>`, s.notAfter))}</tbody>
      </table>`}
    </section>`;
  },
};
