/**
 * A question asked inside the view itself, for hosts without JupyterLab's dialogs (the
 * anywidget in VS Code, Colab or a plain page): no `window.confirm`, which sandboxed
 * output frames block. One question at a time; Escape or Cancel says no.
 */

import { Confirm } from './actions';
import { h } from './dom';

export function inlineConfirm(slot: HTMLElement): Confirm {
  let pending: ((yes: boolean) => void) | null = null;
  return question =>
    new Promise<boolean>(resolve => {
      pending?.(false); // a new question replaces an open one
      const cancel = h('button', { class: 'jobctl-button', text: 'Cancel', attrs: { type: 'button' } });
      const accept = h('button', { class: 'jobctl-button jobctl-danger', text: question.accept, attrs: { type: 'button' } });
      const box = h(
        'div',
        { class: 'jobctl-question', attrs: { role: 'alertdialog', 'aria-label': question.title } },
        h('strong', { class: 'jobctl-question-title', text: question.title }),
        h('span', { class: 'jobctl-question-body', text: question.body }),
        h('span', { class: 'jobctl-question-actions' }, cancel, accept)
      );
      const answer = (yes: boolean) => {
        if (pending === answer) {
          pending = null;
          box.remove();
          resolve(yes);
        }
      };
      pending = answer;
      cancel.addEventListener('click', () => answer(false));
      accept.addEventListener('click', () => answer(true));
      box.addEventListener('keydown', ev => {
        if (ev.key === 'Escape') {
          answer(false);
        }
      });
      slot.replaceChildren(box);
      cancel.focus(); // the safe answer is the one Enter gives
    });
}
