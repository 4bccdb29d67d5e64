// The bearer-token dialog. The API answers 401 when STRIDE_TOKEN (or a read token) is set on
// the coordinator and this tab has none or a wrong one; the user pastes it once, it is kept in
// sessionStorage (until the tab closes) and sent with every call from then on.
import { UNAUTHORIZED_EVENT, getToken, setToken } from './api.ts';
import { h } from './dom.ts';

export function tokenDialog(): HTMLDialogElement {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'STRIDE_TOKEN', 'aria-label': 'API token' });
  const message = h('p', { class: 'muted' });
  const dialog = h(
    'dialog',
    { id: 'token-dialog' },
    h(
      'form',
      { method: 'dialog' },
      h('h2', null, 'API token needed'),
      message,
      h('div', { class: 'field' }, input),
      h(
        'div',
        { class: 'btn-row' },
        h('button', { class: 'btn primary', value: 'save' }, 'Save token'),
        h('button', { class: 'btn', value: 'clear', formnovalidate: true }, 'Forget token'),
        h('button', { class: 'btn', value: 'cancel', formnovalidate: true }, 'Cancel'),
      ),
    ),
  );
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save' && input.value.trim()) setToken(input.value.trim());
    if (dialog.returnValue === 'clear') setToken(undefined);
    input.value = '';
  });
  window.addEventListener(UNAUTHORIZED_EVENT, (e) => {
    if (dialog.open) return;
    const detail = (e as CustomEvent<string>).detail;
    message.textContent = `${/[.!?]$/.test(detail) ? detail : `${detail}.`} ${getToken() ? 'The saved token was refused.' : 'This tab has no token yet.'} Paste the coordinator's token, then try again.`;
    dialog.showModal();
    input.focus();
  });
  return dialog;
}
