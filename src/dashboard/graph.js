// The topology graph: services as boxes in columns (callers left of whom they call), edges as
// arrows labelled with their figures; mTLS edges carry a lock, plaintext edges are dashed red.
import { html } from './html.js';
import { bytes, edgeLabel, millis, mtlsText, percent, rate } from './format.js';

const UNKNOWN = 'unknown';
const BOX_W = 150;
const BOX_H = 48;
const COL_GAP = 400;
const ROW_GAP = 170;
const MARGIN = 40;

/** Column of each node: the longest chain of callers before it (bounded, so cycles end). */
function columns(names, edges) {
  const depth = new Map(names.map((n) => [n, 0]));
  for (let pass = 0; pass < names.length; pass++) {
    let changed = false;
    for (const e of edges) {
      if (e.source === e.destination || e.destination === UNKNOWN) continue;
      const d = (depth.get(e.source) ?? 0) + 1;
      if (d > (depth.get(e.destination) ?? 0) && d < names.length) {
        depth.set(e.destination, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

/** Positions (box centres) of every node, and the SVG size. */
export function layout(services, edges) {
  const names = [...new Set([...services.map((s) => s.service), ...edges.flatMap((e) => [e.source, e.destination])])];
  const depth = columns(names, edges);
  const byColumn = new Map();
  for (const n of names) {
    const c = depth.get(n) ?? 0;
    if (!byColumn.has(c)) byColumn.set(c, []);
    byColumn.get(c).push(n);
  }
  const at = new Map();
  let rows = 1;
  for (const [c, list] of byColumn) {
    list.sort((a, b) => (a === UNKNOWN ? -1 : b === UNKNOWN ? 1 : a.localeCompare(b)));
    rows = Math.max(rows, list.length);
    list.forEach((n, i) => at.set(n, { x: MARGIN + BOX_W / 2 + c * COL_GAP, y: MARGIN + 20 + BOX_H / 2 + i * ROW_GAP }));
  }
  const cols = Math.max(1, ...[...byColumn.keys()].map((c) => c + 1));
  return { at, width: 2 * MARGIN + BOX_W + (cols - 1) * COL_GAP, height: 2 * MARGIN + 40 + BOX_H + (rows - 1) * ROW_GAP };
}

/** Where the segment from the centre of a box towards (dx, dy) leaves the box. */
function border(dx, dy) {
  const len = Math.hypot(dx, dy) || 1;
  const t = Math.min(BOX_W / 2 / (Math.abs(dx) || 1e-9), BOX_H / 2 / (Math.abs(dy) || 1e-9));
  return { x: dx * t, y: dy * t, len };
}

function Lock({ x, y }) {
  return html`<g class="lock" transform=${`translate(${x - 6},${y - 7})`} aria-hidden="true">
    <path d="M3 6 V4 a3 3 0 0 1 6 0 V6" />
    <rect x="1" y="6" width="10" height="8" rx="1.5" />
  </g>`;
}

function Edge({ edge, from, to, offset, id }) {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const b = border(dx, dy);
  const nx = -dy / b.len;
  const ny = dx / b.len;
  const ox = nx * offset;
  const oy = ny * offset;
  const x1 = from.x + b.x + ox;
  const y1 = from.y + b.y + oy;
  const x2 = to.x - b.x * 1.04 + ox;
  const y2 = to.y - b.y * 1.04 + oy;
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  const tcp = edge.protocol === 'tcp';
  const lines = tcp
    ? [`${rate(edge.connectionsPerSecond)} conn/s`, `${bytes(edge.bytesPerSecond)}/s`]
    : [`${rate(edge.requestsPerSecond)} rps · ${percent(edge.successRate)}`, `p50 ${millis(edge.p50Ms)} · p99 ${millis(edge.p99Ms)}`];
  const width = Math.max(...lines.map((l) => l.length)) * 6.4 + 14;
  const security = edge.tls ? 'mTLS' : 'plaintext';
  return html`<g class=${`edge ${edge.tls ? 'tls' : 'plaintext'}`} data-testid=${`edge-${id}`} data-source=${edge.source} data-destination=${edge.destination}
      data-tls=${String(edge.tls)} data-protocol=${edge.protocol} data-rps=${edge.requestsPerSecond} data-success=${edge.successRate ?? ''}
      data-p50=${edge.p50Ms ?? ''} data-p99=${edge.p99Ms ?? ''} data-cps=${edge.connectionsPerSecond} data-bps=${edge.bytesPerSecond}>
    <title>${`${edge.source} → ${edge.destination} (${edge.protocol}, ${security}): ${edgeLabel(edge)}`}</title>
    <line x1=${x1} y1=${y1} x2=${x2} y2=${y2} marker-end=${edge.tls ? 'url(#arrow)' : 'url(#arrow-plain)'} />
    <rect class="label-bg" x=${mx - width / 2} y=${my - 30} width=${width} height="48" rx="4" />
    ${edge.tls
      ? html`<${Lock} x=${mx - 16} y=${my - 19} /><text class="marker" x=${mx - 6} y=${my - 15}>mTLS</text>`
      : html`<text class="marker" data-testid=${`edge-${id}-plaintext`} x=${mx} y=${my - 15} text-anchor="middle">plaintext</text>`}
    <text class="figures" data-testid=${`edge-${id}-label`} x=${mx} y=${my} text-anchor="middle">
      <tspan x=${mx} dy="0">${lines[0]}</tspan><tspan x=${mx} dy="14">${lines[1]}</tspan>
    </text>
  </g>`;
}

function Node({ name, at, service }) {
  const unknown = name === UNKNOWN;
  const title = unknown ? 'plaintext callers' : name;
  const detail = unknown ? 'no mesh identity' : service ? `${service.passing}/${service.instances} passing · ${mtlsText(service.mtls)}` : 'not in the catalog';
  const box = html`<rect x=${at.x - BOX_W / 2} y=${at.y - BOX_H / 2} width=${BOX_W} height=${BOX_H} rx="6" />
    <text class="name" x=${at.x} y=${at.y - 4} text-anchor="middle">${title}</text>
    <text class="detail" x=${at.x} y=${at.y + 13} text-anchor="middle">${detail}</text>`;
  const health = unknown ? 'unknown' : !service || service.instances === 0 ? 'none' : service.passing === service.instances ? 'passing' : service.passing === 0 ? 'critical' : 'degraded';
  return html`<g class=${`node ${health}`} data-testid=${`node-${name}`} data-service=${name}>
    ${unknown || !service ? box : html`<a href=${`#/service/${encodeURIComponent(service.namespace)}/${encodeURIComponent(name)}`}>${box}</a>`}
  </g>`;
}

/** The SVG graph of a TopologyAnswer's services and edges. */
export function TopologyGraph({ services, edges }) {
  if (services.length === 0 && edges.length === 0) return html`<p class="muted">No services yet.</p>`;
  const { at, width, height } = layout(services, edges);
  const byName = new Map(services.map((s) => [s.service, s]));
  const seen = new Map();
  const pairs = new Set(edges.map((e) => `${e.source}\u0000${e.destination}`));
  return html`<svg class="graph" role="img" aria-label="Topology: who calls whom" viewBox=${`0 0 ${width} ${height}`} width=${width} height=${height}>
    <defs>
      <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" class="arrow" /></marker>
      <marker id="arrow-plain" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" class="arrow-plain" /></marker>
    </defs>
    ${edges.map((e) => {
      const pair = `${e.source}\u0000${e.destination}`;
      const n = seen.get(pair) ?? 0;
      seen.set(pair, n + 1);
      // Both directions between two services: each on its own side; a second edge of the same pair (other protocol or security) further out.
      const offset = (pairs.has(`${e.destination}\u0000${e.source}`) ? 12 : 0) + n * 26;
      const id = `${e.source}-${e.destination}${n === 0 ? '' : `-${e.protocol}-${e.tls ? 'tls' : 'plaintext'}`}`;
      return html`<${Edge} key=${`${pair}-${e.protocol}-${e.tls}`} edge=${e} from=${at.get(e.source)} to=${at.get(e.destination)} offset=${offset} id=${id} />`;
    })}
    ${[...at.entries()].map(([name, p]) => html`<${Node} key=${name} name=${name} at=${p} service=${byName.get(name)} />`)}
  </svg>`;
}
