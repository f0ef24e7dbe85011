// DOM and formatting helpers shared by the views. Everything that shows data goes through
// `h` (text nodes, attributes set one by one): topic names, group ids, record keys and values
// come from clients, so nothing here parses HTML.

/** h(tag, attrs, ...children): an element; strings become text nodes, null/false are skipped. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

let uid = 0;
/** A document-unique id for label/aria wiring. */
export function id(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// ---------------------------------------------------------------------------------------------
// Hash routes. Path segments are percent-encoded, so a group id may hold '/', '?' or '#'.

/** path?query, the query's empty values (null, undefined, '') left out. */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

/** hash(['topics', name], {after}) -> '#/topics/<name>?after=...' (empty values left out). */
export function hash(segments, query) {
  return withQuery(`#/${segments.map((s) => encodeURIComponent(String(s))).join('/')}`, query);
}

/** A link to a hash route; data-key lets a refresh or an action put focus back on it. */
export function link(href, ...children) {
  return h('a', { href, 'data-key': `a:${href}` }, ...children);
}

// ---------------------------------------------------------------------------------------------
// Formatting. Unknown values (a broker that did not answer) read "unknown" to a screen reader.

export function unknown() {
  return h('span', { class: 'unknown' }, h('span', { 'aria-hidden': 'true' }, '—'), h('span', { class: 'vh' }, 'unknown'));
}

const intFmt = new Intl.NumberFormat('en');
const decFmt = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/** An integer as text, 'unknown' when it is not known. */
export function numText(n) {
  return n === null || n === undefined ? 'unknown' : intFmt.format(n);
}

export function num(n) {
  return n === null || n === undefined ? unknown() : intFmt.format(n);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function bytesText(n) {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${intFmt.format(v)} B` : `${decFmt.format(v)} ${UNITS[u]}`;
}

export function bytes(n) {
  return n === null || n === undefined ? unknown() : bytesText(n);
}

export function rate(n, unit) {
  if (n === null || n === undefined) return unknown();
  return unit === 'B' ? `${bytesText(n)}/s` : `${decFmt.format(n)}/s`;
}

export function time(ms) {
  if (ms === null || ms === undefined || ms < 0) return unknown();
  const d = new Date(ms);
  const iso = d.toISOString();
  return h('time', { datetime: iso }, iso.replace('T', ' ').replace('Z', ' UTC'));
}

/** yyyy-mm-ddThh:mm:ss in local time, for <input type="datetime-local">. */
export function localInputValue(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

export function list(ids) {
  return ids && ids.length ? ids.join(', ') : '—';
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}`.trim() }, text);
}

// ---------------------------------------------------------------------------------------------
// Tables: <caption>, <th scope="col">, and the first cell of each row as <th scope="row">.

/**
 * table({caption, columns: [{label, num, cls}], rows: [[cell, ...]], empty, rowClass})
 * A cell is a string, a number, a Node or an array of those.
 */
export function table({ caption, columns, rows, empty, rowClass }) {
  const cls = (c) => [c.num ? 'num' : null, c.cls || null].filter(Boolean).join(' ') || null;
  const head = h('tr', null, columns.map((c) => h('th', { scope: 'col', class: cls(c) }, c.label)));
  const body = rows.map((cells, r) =>
    h(
      'tr',
      { class: rowClass ? rowClass(r) : null },
      cells.map((cell, i) => h(i === 0 ? 'th' : 'td', { scope: i === 0 ? 'row' : null, class: cls(columns[i]) }, cell)),
    ),
  );
  const capId = id('caption');
  const t = h('table', null, h('caption', { id: capId }, caption), h('thead', null, head), h('tbody', null, body));
  // A wide table scrolls on its own, not the page; focusable so the keyboard can scroll it.
  const wrap = h(
    'div',
    { class: 'table-scroll', role: 'region', tabindex: 0, 'aria-labelledby': capId, 'data-key': `table:${columns.map((c) => c.label).join('|')}` },
    t,
  );
  if (!rows.length) {
    return h('div', null, wrap, h('p', { class: 'muted empty' }, empty || 'Nothing to show.'));
  }
  return wrap;
}

/** A <dl> of [term, value] pairs. */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.filter(Boolean).map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))),
  );
}

/** A notice naming the brokers that did not answer (their figures read "unknown"). */
export function provenance(data) {
  const missing = data.unavailable || [];
  if (!missing.length) return [];
  return [
    h(
      'p',
      { class: 'notice warn' },
      badge('Partial', 'warn'),
      ` No answer from broker${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: figures held there read “unknown”.`,
    ),
  ];
}

/** Previous / Next links under a paged table. */
export function pager(label, prev, next, extra) {
  const items = [];
  if (prev) items.push(h('li', null, link(prev, '← Previous')));
  if (next) items.push(h('li', null, link(next, 'Next →')));
  if (extra) items.push(...extra.map((e) => h('li', null, e)));
  if (!items.length) return null;
  return h('nav', { class: 'pager', 'aria-label': label }, h('ul', null, items));
}

/** A labelled form control: <div class="field"><label for>…</label><control id></div>. */
export function field(label, control, hint) {
  const cid = control.id || id('f');
  control.id = cid;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${cid}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: cid }, label), control, hintEl);
}
