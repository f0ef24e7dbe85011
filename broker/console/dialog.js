// Confirmations in a native modal <dialog>: Escape or "Cancel" closes it, and focus goes back
// to the control that opened it. The dialog closes as soon as it is confirmed, so that the
// action's result is announced in the page's live region (which a modal dialog makes inert).

import { h, id } from './dom.js';

/**
 * ask({title, text, fields, buttons: [{label, value, danger}]})
 * Resolves to {action, form} (action: the value of the button pressed; form: the <form>, whose
 * controls are read with form.elements) or to null when cancelled.
 */
export function ask({ title, text, fields, buttons }) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const titleId = id('dialog-title');
    const form = h('form', { method: 'dialog', class: 'dialog-form' });
    const dlg = h('dialog', { 'aria-labelledby': titleId });
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
    const submits = buttons.map((b) =>
      h('button', { type: 'submit', value: b.value || 'ok', class: b.danger ? 'danger' : 'primary' }, b.label),
    );
    form.append(
      h('h2', { id: titleId }, title),
      ...(Array.isArray(text) ? text : [text]).filter(Boolean).map((t) => (t instanceof Node ? t : h('p', null, t))),
      ...(fields || []),
      h('div', { class: 'dialog-buttons' }, cancel, submits),
    );
    dlg.append(form);
    let result = null;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result = { action: ev.submitter ? ev.submitter.value : 'ok', form };
      dlg.close();
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    // The first field, or Cancel where there is none (the safe choice for a destructive action).
    const first = form.querySelector('input:not([type="hidden"]):not([disabled]), select, textarea');
    (first || cancel).focus();
  });
}

/** The set of the form's control values by name (checkbox: boolean). */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'radio') {
      if (el.checked) out[el.name] = el.value;
    } else if (el.type === 'checkbox') {
      out[el.name] = el.checked;
    } else {
      out[el.name] = el.value;
    }
  }
  return out;
}
