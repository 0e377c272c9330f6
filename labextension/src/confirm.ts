/**
 * JupyterLab's way of asking before an action that cannot be undone: a modal dialog with
 * Cancel and a warning button. Only the JupyterLab hosts use it (the anywidget build has
 * no `@jupyterlab/apputils`).
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';

import { Confirm } from './view/actions';

export const labConfirm: Confirm = async question => {
  const answer = await showDialog({
    title: question.title,
    body: question.body, // a string: JupyterLab renders it as text
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: question.accept })]
  });
  return answer.button.accept;
};
