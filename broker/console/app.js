// The console's hash router. A route names a view module, which exports:
//   heading(params)  the <h1> text, known before any data arrives
//   crumbs(params)   optional [label, href] pairs for the breadcrumb trail
//   refresh          true where the page re-renders every 10 s (overview, group)
//   render(ctx)      async; resolves to the nodes under the heading
// After each route change focus moves to the <h1>; a refresh keeps focus where it was.

import { announce, clearStale, cluster } from './api.js';
import { h, hash } from './dom.js';
import * as overview from './views/overview.js';
import * as topics from './views/topics.js';
import * as topic from './views/topic.js';
import * as messages from './views/messages.js';
import * as groups from './views/groups.js';
import * as group from './views/group.js';

const REFRESH_MS = 10000;

const ROUTES = [
  { name: 'overview', path: [], view: overview, nav: 'overview' },
  { name: 'topics', path: ['topics'], view: topics, nav: 'topics' },
  { name: 'topic', path: ['topics', ':name'], view: topic, nav: 'topics' },
  { name: 'messages', path: ['topics', ':name', 'messages'], view: messages, nav: 'topics' },
  { name: 'groups', path: ['groups'], view: groups, nav: 'groups' },
  { name: 'group', path: ['groups', ':id'], view: group, nav: 'groups' },
];

const notFound = {
  heading: () => 'Page not found',
  render: async (ctx) => [
    h('p', null, `There is no page at “${ctx.raw}”.`),
    h('p', null, h('a', { href: '#/' }, 'Go to the overview')),
  ],
};

/** The route of a location hash, or null for a hash that is not a route (the skip link's). */
function resolve(raw) {
  const s = raw.startsWith('#') ? raw.slice(1) : raw;
  if (s === '') return resolve('#/');
  if (!s.startsWith('/')) return null;
  const qi = s.indexOf('?');
  const query = new URLSearchParams(qi < 0 ? '' : s.slice(qi + 1));
  const parts = (qi < 0 ? s : s.slice(0, qi)).split('/').slice(1);
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  let segs;
  try {
    segs = parts.map(decodeURIComponent);
  } catch {
    segs = null;
  }
  for (const r of segs ? ROUTES : []) {
    if (r.path.length !== segs.length) continue;
    const params = {};
    if (r.path.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = segs[i]), true) : p === segs[i]))) {
      return { ...r, params, query, raw: s };
    }
  }
  return { name: 'not-found', path: [], view: notFound, nav: null, params: {}, query, raw: s };
}

let seq = 0;
let timer = null;
let autoRefresh = true;
let current = null;

const $ = (sel) => document.querySelector(sel);

function focusKeyOf(el) {
  return el && $('#page').contains(el) ? el.getAttribute('data-key') : null;
}

function focusByKey(key, preventScroll) {
  if (!key) return false;
  const el = $('#page').querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!el) return false;
  el.focus({ preventScroll });
  return true;
}

function markNav(nav, exact) {
  for (const a of document.querySelectorAll('header nav a[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', exact ? 'page' : 'true');
    else a.removeAttribute('aria-current');
  }
}

function crumbTrail(route) {
  const items = route.view.crumbs ? route.view.crumbs(route.params) : [];
  if (!items.length) return null;
  return h(
    'nav',
    { 'aria-label': 'Breadcrumb', class: 'crumbs' },
    h('ol', null, items.map(([label, href]) => h('li', null, h('a', { href }, label)))),
  );
}

function refreshControl() {
  const box = h('input', { type: 'checkbox', id: 'auto-refresh', checked: autoRefresh });
  box.addEventListener('change', () => {
    autoRefresh = box.checked;
    if (autoRefresh) show({ refresh: true });
  });
  return h(
    'div',
    { class: 'refresh' },
    box,
    h('label', { for: 'auto-refresh' }, `Refresh every ${REFRESH_MS / 1000} s`),
    h('span', { id: 'updated', class: 'muted small' }),
  );
}

function stamp() {
  const el = $('#updated');
  if (el) el.textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
}

function stopTimer() {
  clearInterval(timer);
  timer = null;
}

function schedule(route) {
  stopTimer();
  if (!route.view.refresh || document.hidden) return;
  timer = setInterval(() => {
    // Never under an open dialog: the form being filled in belongs to the current render.
    if (!autoRefresh || document.hidden || $('dialog[open]')) return;
    show({ refresh: true });
  }, REFRESH_MS);
}

/** Renders the route of location.hash. */
async function show({ refresh = false, focusKey = null } = {}) {
  const route = resolve(location.hash);
  if (!route) return;
  if (refresh && (!current || current.raw !== route.raw)) return;
  const token = ++seq;
  const main = $('#main');
  const title = $('#page-title');
  const page = $('#page');
  const ctx = {
    params: route.params,
    query: route.query,
    raw: route.raw,
    reload: (key) => show({ focusKey: key }),
    go: (target) => {
      if (location.hash === target) show();
      else location.hash = target;
    },
  };
  if (!refresh) {
    stopTimer();
    current = route;
    clearStale(1500);
    title.textContent = route.view.heading(route.params);
    document.title = `${title.textContent} · Sluice`;
    $('#crumbs').replaceChildren(...[crumbTrail(route)].filter(Boolean));
    $('#page-tools').replaceChildren(...(route.view.refresh ? [refreshControl()] : []));
    markNav(route.nav, route.path.length <= 1);
    main.setAttribute('aria-busy', 'true');
    page.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  }
  let nodes;
  try {
    nodes = await route.view.render(ctx);
  } catch (e) {
    if (token !== seq) return;
    if (refresh) {
      announce(`Refresh failed: ${e}`, 'err');
      return;
    }
    announce(`Could not load this page: ${e}`, 'err');
    nodes = [h('p', { class: 'notice err' }, `Could not load this page: ${e}`)];
  }
  if (token !== seq) return;
  const keep = refresh ? focusKeyOf(document.activeElement) : focusKey;
  // A refresh keeps what the reader opened (the lag samples, say).
  const opened = refresh ? [...page.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key) : [];
  page.replaceChildren(...[nodes].flat().filter(Boolean));
  for (const k of opened) page.querySelector(`details[data-key="${CSS.escape(k)}"]`)?.setAttribute('open', '');
  main.setAttribute('aria-busy', 'false');
  // For tests and scripts: which route is on screen, and how many renders (not refreshes) ran.
  main.dataset.route = route.name;
  main.dataset.view = route.raw;
  if (!refresh) main.dataset.renders = String(Number(main.dataset.renders || 0) + 1);
  stamp();
  if (!focusByKey(keep, refresh) && !refresh) title.focus();
  if (!refresh) schedule(route);
}

function footer() {
  cluster()
    .then((c) => {
      $('#footer-info').textContent = `Sluice ${c.version} · cluster ${c.cluster_id} · served by broker ${c.served_by}`;
    })
    .catch(() => {});
}

document.addEventListener('visibilitychange', () => {
  const route = current;
  if (!route) return;
  if (document.hidden) {
    stopTimer();
  } else if (route.view.refresh) {
    if (autoRefresh && !$('dialog[open]')) show({ refresh: true });
    schedule(route);
  }
});

window.addEventListener('hashchange', () => show());

$('#skip').addEventListener('click', (ev) => {
  // The skip link must not change the hash: that is the router's.
  ev.preventDefault();
  $('#page-title').focus();
});

if (!location.hash) history.replaceState(null, '', hash([]));
// The page first: the overview asks for the cluster afresh, and the footer then shares that answer.
show();
footer();
