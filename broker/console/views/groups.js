// #/groups?after= : one page of consumer groups (GET /api/v1/groups), merged from every
// broker's coordinator shard.

import { get } from '../api.js';
import { badge, h, hash, link, num, pager, provenance, table } from '../dom.js';

const LIMIT = 50;
const prevOf = new Map();

export function heading() {
  return 'Consumer groups';
}

export function stateBadge(state) {
  const kind = { Stable: 'ok', Empty: '', Dead: 'bad', PreparingRebalance: 'warn', CompletingRebalance: 'warn' }[state];
  return badge(state || 'unknown', kind ?? '');
}

/** "broker N" of a group's coordinator, or unknown. */
export function coordinator(g) {
  return g.coordinator === null || g.coordinator === undefined ? num(null) : `broker ${g.coordinator}`;
}

export async function render(ctx) {
  const after = ctx.query.get('after') || '';
  const page = await get(['groups'], { after, limit: LIMIT });
  if (page.next) prevOf.set(page.next, after);
  const items = page.items || [];
  const rows = items.map((g) => [
    link(hash(['groups', g.group_id]), g.group_id === '' ? '(empty id)' : g.group_id),
    stateBadge(g.state),
    g.protocol_type || h('span', { class: 'muted' }, 'none'),
    num(g.members),
    coordinator(g),
    num(g.total_lag),
  ]);
  const tbl = table({
    caption: `Consumer groups: ${items.length} shown of ${page.total}`,
    columns: [
      { label: 'Group' },
      { label: 'State' },
      { label: 'Protocol type' },
      { label: 'Members', num: true },
      { label: 'Coordinator' },
      { label: 'Total lag', num: true },
    ],
    rows,
    empty: 'No consumer group has committed offsets or joined yet.',
  });
  let prev = null;
  let first = null;
  if (after) {
    if (prevOf.has(after)) prev = hash(['groups'], { after: prevOf.get(after) });
    else first = link(hash(['groups']), 'First page');
  }
  const next = page.next ? hash(['groups'], { after: page.next }) : null;
  return [...provenance(page), tbl, pager('Group pages', prev, next, first ? [first] : null)];
}
