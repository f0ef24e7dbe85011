// #/groups/<id> : one consumer group from its coordinator (GET /api/v1/groups/<id>): members
// and their assignments, committed offsets and lag, the lag history; refreshed every 10 s.
// With actions enabled: reset the group's offsets (the coordinator refuses an active group).

import { act, cluster, get } from '../api.js';
import { ask, values } from '../dialog.js';
import { badge, facts, field, h, hash, id, link, localInputValue, num, provenance, table } from '../dom.js';
import { lagHistory } from '../spark.js';
import { coordinator, stateBadge } from './groups.js';

export const refresh = true;

export function heading(p) {
  return `Group ${p.id}`;
}

export function crumbs(p) {
  return [
    ['Groups', hash(['groups'])],
    [p.id, hash(['groups', p.id])],
  ];
}

function radio(name, value, label, checked) {
  const input = h('input', { type: 'radio', name, value, id: id('r'), checked });
  return h('div', { class: 'choice' }, input, h('label', { for: input.id }, label));
}

async function resetOffsets(ctx, g) {
  const when = h('input', { type: 'datetime-local', name: 'when', step: 1, value: localInputValue(Date.now() - 3600000) });
  const whenField = field('Time (your local time)', when, 'The first offset at or after it, per partition; the log end where there is none.');
  const choices = h(
    'fieldset',
    null,
    h('legend', null, 'Move every committed offset to'),
    radio('to', 'earliest', 'the earliest offset (re-read everything kept)', true),
    radio('to', 'latest', 'the latest offset (skip everything not yet read)', false),
    radio('to', 'timestamp', 'the first offset at a time', false),
  );
  const sync = () => {
    const ts = choices.querySelector('input[value="timestamp"]').checked;
    whenField.hidden = !ts;
    when.required = ts;
  };
  choices.addEventListener('change', sync);
  sync();
  const active = g.state !== 'Empty' && g.state !== 'Dead';
  const answer = await ask({
    title: `Reset the offsets of ${g.group_id}?`,
    text: [
      `The committed offsets of its ${g.offsets.length} partition${g.offsets.length === 1 ? '' : 's'} are replaced.`,
      active
        ? h('p', { class: 'notice warn' }, badge('Active', 'warn'), ` The group is ${g.state}: its coordinator only resets a group with no members. Stop its consumers first.`)
        : null,
    ],
    fields: [choices, whenField],
    buttons: [{ label: 'Reset offsets', danger: true }],
  });
  if (!answer) return;
  const v = values(answer.form);
  const body = { to: v.to };
  let target = `the ${v.to} offsets`;
  if (v.to === 'timestamp') {
    body.timestamp_ms = new Date(v.when).getTime();
    target = `the offsets at ${new Date(body.timestamp_ms).toISOString()}`;
  }
  const r = await act('POST', ['groups', g.group_id, 'reset-offsets'], body, `Reset the offsets of “${g.group_id}” to ${target}.`);
  ctx.reload(r.ok ? null : 'reset-offsets');
}

function assignment(list) {
  if (!list || !list.length) return h('span', { class: 'muted' }, 'none');
  return h(
    'ul',
    { class: 'plain' },
    list.map((a) => h('li', null, link(hash(['topics', a.topic]), a.topic), `: ${a.partitions.join(', ')}`)),
  );
}

export async function render(ctx) {
  const gid = ctx.params.id;
  const [g, c] = await Promise.all([get(['groups', gid]), cluster()]);
  const members = g.members || [];
  const offsets = (g.offsets || []).slice().sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);

  const tools = c.actions_enabled
    ? h(
        'div',
        { class: 'toolbar' },
        h('button', { type: 'button', class: 'danger push', 'data-key': 'reset-offsets', onclick: () => resetOffsets(ctx, g) }, 'Reset offsets'),
      )
    : null;

  const summary = facts([
    ['State', stateBadge(g.state)],
    ['Protocol', `${g.protocol_type || 'none'}${g.protocol ? ` / ${g.protocol}` : ''}`],
    ['Coordinator', coordinator(g)],
    ['Members', num(members.length)],
    ['Total lag', num(g.total_lag)],
    ['Lag history', lagHistory(g.lag_history, 'Total lag')],
  ]);

  const memberTable = table({
    caption: `Members (${members.length})`,
    columns: [{ label: 'Member ID' }, { label: 'Client ID' }, { label: 'Instance ID' }, { label: 'Host' }, { label: 'Assigned partitions' }],
    rows: members.map((m) => [
      h('code', null, m.member_id),
      m.client_id,
      m.instance_id ?? h('span', { class: 'muted' }, 'none'),
      m.host,
      assignment(m.assignment),
    ]),
    empty: 'No members: the group is not consuming now.',
  });

  const offsetTable = table({
    caption: `Committed offsets (${offsets.length} partitions; the partition opens its messages at the committed offset)`,
    columns: [
      { label: 'Topic' },
      { label: 'Partition', num: true },
      { label: 'Committed', num: true },
      { label: 'High watermark', num: true },
      { label: 'Lag', num: true },
    ],
    rows: offsets.map((o) => [
      link(hash(['topics', o.topic]), o.topic),
      link(hash(['topics', o.topic, 'messages'], { partition: o.partition, offset: o.committed >= 0 ? o.committed : null }), String(o.partition)),
      num(o.committed),
      num(o.hw),
      o.lag > 0 ? h('strong', null, num(o.lag)) : num(o.lag),
    ]),
    empty: 'No committed offsets.',
  });

  return [
    ...provenance(g),
    tools,
    summary,
    h('section', { 'aria-labelledby': 'members-h' }, h('h2', { id: 'members-h' }, 'Members'), memberTable),
    h('section', { 'aria-labelledby': 'offsets-h' }, h('h2', { id: 'offsets-h' }, 'Offsets and lag'), offsetTable),
  ];
}
