// The dashboard: the admin token (from #token=… or the login form), hash routing, and a
// refresh of the current page every 2 s with "updated Xs ago" and an error banner.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { ApiFailure, getJson, storeToken, takeToken } from './api.js';
import { certificates, overview, service } from './pages.js';

const REFRESH_MS = 2000;

/** The page a hash names: `#/`, `#/service/NS/NAME`, `#/certificates`. */
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts[0] === 'service' && parts.length === 3) return { page: service, params: parts.slice(1), key: hash };
  if (parts[0] === 'certificates') return { page: certificates, params: [], key: '#/certificates' };
  return { page: overview, params: [], key: '#/' };
}

function Login({ message, onToken }) {
  const [value, setValue] = useState('');
  const submit = (ev) => {
    ev.preventDefault();
    if (value.trim() !== '') onToken(value.trim());
  };
  return html`<form class="login" onSubmit=${submit} data-testid="login">
    <h2>Sign in</h2>
    ${message && html`<p class="error" role="alert">${message}</p>`}
    <label for="token">Admin token <span class="muted">(the file DATA/admin-token of weft server)</span></label>
    <input id="token" type="password" autocomplete="off" value=${value} onInput=${(ev) => setValue(ev.currentTarget.value)} />
    <button type="submit">Open the dashboard</button>
  </form>`;
}

/** Loads the route's page now and every REFRESH_MS (one load at a time); a 401 drops the token. */
function usePage(route, token, onUnauthorized) {
  const [state, setState] = useState({ key: route.key, data: null, error: null, at: null });
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    setState({ key: route.key, data: null, error: null, at: null });
    const get = (path) => getJson(path, token);
    const tick = async () => {
      try {
        const data = await route.page.load(get, route.params);
        if (!stopped) setState({ key: route.key, data, error: null, at: Date.now() });
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiFailure && err.status === 401) return onUnauthorized(err.message);
        setState((s) => ({ ...s, error: err instanceof Error ? err.message : String(err) }));
      }
      if (!stopped) timer = setTimeout(tick, REFRESH_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [route.key, token]);
  return state;
}

function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

function Dashboard({ token, onUnauthorized, onSignOut }) {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const route = parseRoute(hash);
  const state = usePage(route, token, onUnauthorized);
  const now = useNow();
  const Page = route.page.view;
  const nav = (href, label, current) => html`<a href=${href} aria-current=${current ? 'page' : undefined}>${label}</a>`;
  return html`<header>
      <h1>weft</h1>
      <nav>${nav('#/', 'Overview', route.page === overview)} ${nav('#/certificates', 'Certificates', route.page === certificates)}</nav>
      <span class="updated" data-testid="updated">${state.at === null ? 'loading…' : `updated ${Math.max(0, Math.round((now - state.at) / 1000))}s ago`}</span>
      <button type="button" class="link" onClick=${onSignOut}>Sign out</button>
    </header>
    ${state.error && html`<div class="banner" role="alert" data-testid="error">The API failed: ${state.error}</div>`}
    <main data-testid=${`page-${route.page.title.toLowerCase()}`}>
      ${state.data === null || state.key !== route.key ? html`<p class="muted">Loading…</p>` : html`<${Page} data=${state.data} />`}
    </main>`;
}

function App() {
  const [token, setToken] = useState(() => takeToken());
  const [message, setMessage] = useState(null);
  const use = (t) => {
    storeToken(t);
    setMessage(null);
    setToken(t);
  };
  const drop = (why) => {
    storeToken(null);
    setMessage(why);
    setToken(null);
  };
  if (token === null) return html`<${Login} message=${message} onToken=${use} />`;
  return html`<${Dashboard} token=${token} onUnauthorized=${(m) => drop(`The token was refused: ${m}`)} onSignOut=${() => drop(null)} />`;
}

const root = document.getElementById('app');
root.textContent = ''; // the static "Loading…" line
render(html`<${App} />`, root);
