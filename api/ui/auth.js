/**
 * The token prompt: a modal dialog asked for by the client on a 401. Concurrent 401s share one
 * prompt, so the operator types the token once.
 */
import { byId } from './dom.js';

let open = null;

/** Resolves to the token typed, or null when the operator cancels (Cancel or Escape). */
export function askToken({ refused, message }) {
  if (open) return open;
  const dialog = byId('auth');
  const form = byId('auth-form');
  const input = byId('auth-token');
  const returnFocus = document.activeElement;
  byId('auth-title').textContent = refused ? 'Token refused' : 'Token needed';
  byId('auth-message').textContent = refused
    ? 'The server did not accept the token. Enter it again.'
    : `The server needs a token for this change${message ? `: ${message}` : '.'}`;
  input.value = '';
  open = new Promise((resolve) => {
    const finish = (token) => {
      form.removeEventListener('submit', onSubmit);
      byId('auth-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      input.value = '';
      open = null;
      if (returnFocus instanceof HTMLElement && returnFocus.isConnected) returnFocus.focus();
      resolve(token);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (token) finish(token);
      else input.focus();
    };
    const onCancel = (ev) => {
      ev.preventDefault();
      finish(null);
    };
    form.addEventListener('submit', onSubmit);
    byId('auth-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
  return open;
}
