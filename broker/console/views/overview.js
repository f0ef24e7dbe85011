// #/ : the cluster at a glance (GET /api/v1/cluster), refreshed every 10 s.

import { cluster } from '../api.js';
import { badge, bytes, facts, h, hash, link, list, num, provenance, table, unknown } from '../dom.js';

export const refresh = true;

export function heading() {
  return 'Cluster overview';
}

function stat(label, value, href, alert) {
  const v = h('span', { class: 'stat-value' }, num(value));
  return h(
    'li',
    { class: `stat${alert ? ' alert' : ''}` },
    h('span', { class: 'stat-label' }, href ? link(href, label) : label),
    v,
    alert ? badge('attention', 'warn') : null,
  );
}

function disk(d) {
  if (!d) return unknown();
  const cap = d.capacity_bytes;
  if (!cap) return [bytes(d.used_bytes), h('span', { class: 'muted' }, ' in logs')];
  const pct = Math.round((100 * (cap - d.free_bytes)) / cap);
  return h(
    'span',
    { class: 'disk' },
    h('meter', { min: 0, max: cap, value: cap - d.free_bytes, low: cap * 0.7, high: cap * 0.85, optimum: 0, 'aria-label': `volume ${pct}% full` }),
    ' ',
    bytes(d.used_bytes),
    h('span', { class: 'muted' }, ' in logs, '),
    bytes(d.free_bytes),
    h('span', { class: 'muted' }, ' free of '),
    bytes(cap),
  );
}

function consoleLink(url) {
  // Only http(s) URLs become links: the address comes from a broker's registration.
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return unknown();
  return h('a', { href: url }, url.replace(/^https?:\/\//i, '').replace(/\/$/, ''));
}

export async function render() {
  const c = await cluster({ fresh: true });
  const counts = c.counts || {};
  const q = c.quorum || {};
  const brokers = (c.brokers || []).slice().sort((a, b) => a.id - b.id);

  const stats = h(
    'ul',
    { class: 'stats', 'aria-label': 'Counts' },
    stat('Brokers', counts.brokers),
    stat('Topics', counts.topics, hash(['topics'])),
    stat('Partitions', counts.partitions),
    stat('Under-replicated', counts.under_replicated, null, counts.under_replicated > 0),
    stat('Offline', counts.offline, null, counts.offline > 0),
    stat('Reassigning', counts.reassigning),
  );

  const summary = facts([
    ['Cluster ID', h('code', null, c.cluster_id)],
    ['Active controller', c.controller_id === null || c.controller_id < 0 ? 'none' : `broker ${c.controller_id}`],
    ['Quorum', `leader ${q.leader ?? 'none'}, term ${q.term ?? '?'}, voters ${list(q.voters)}`],
    ['Version', c.version],
    ['Actions', c.actions_enabled ? badge('enabled', 'warn') : 'read-only (console.actions.enable=false)'],
  ]);

  const rows = brokers.map((b) => [
    String(b.id),
    `${b.host}:${b.port}`,
    b.rack ?? h('span', { class: 'muted' }, 'none'),
    b.fenced ? badge('fenced', 'bad') : badge('active', 'ok'),
    num(b.epoch),
    disk(b.disk),
    b.id === c.served_by ? h('span', { class: 'muted' }, 'this one') : consoleLink(b.console_url),
  ]);
  const brokerTable = table({
    caption: `Brokers (${brokers.length})`,
    columns: [
      { label: 'ID', num: true },
      { label: 'Address' },
      { label: 'Rack' },
      { label: 'Status' },
      { label: 'Epoch', num: true },
      { label: 'Disk' },
      { label: 'Console' },
    ],
    rows,
    rowClass: (i) => (brokers[i].fenced ? 'row-bad' : null),
    empty: 'No broker is registered.',
  });

  return [
    ...provenance(c),
    h('section', { 'aria-labelledby': 'sum-h' }, h('h2', { id: 'sum-h', class: 'vh' }, 'Summary'), stats, summary),
    h('section', { 'aria-labelledby': 'brokers-h' }, h('h2', { id: 'brokers-h' }, 'Brokers'), brokerTable),
  ];
}
