/**
 * "Run as job" on a notebook: from the file browser's context menu, the notebook's toolbar
 * and the command palette. It asks for parameters (papermill's convention: they are
 * assigned in a cell after the one tagged `parameters`), saves a notebook with unsaved
 * changes first (what runs is what the user sees), starts a `notebook` job and opens its
 * detail tab, where the executed copy can be opened.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { runIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { Transport, errorMessage } from '../api/transport';
import { Job } from '../api/types';
import { pageTransport } from '../mime';
import { h } from '../view/dom';
import { PALETTE_CATEGORY } from './commands';
import { parseParameters } from './parameters';
import { IJobsPanel } from './plugin';

export const RUN_NOTEBOOK = 'jobctl:run-notebook';
export const RUN_NOTEBOOK_LABEL = 'Run Notebook as Job';

class ParametersBody extends Widget implements Dialog.IBodyWidget<string> {
  private readonly input: HTMLTextAreaElement;

  constructor(path: string) {
    super();
    this.addClass('jobctl-run-notebook');
    this.input = h('textarea', {
      class: 'jobctl-run-notebook-parameters',
      attrs: { rows: '4', spellcheck: 'false', placeholder: '{"epochs": 3, "learning_rate": 0.01}', 'aria-label': 'Parameters' }
    });
    this.node.append(
      h('p', { text: `${path} runs in a kernel of its own, supervised by jobctl; an executed copy is written beside it as it goes.` }),
      h('label', { class: 'jobctl-run-notebook-label', text: 'Parameters (a JSON object, optional)' }),
      this.input
    );
  }

  getValue(): string {
    return this.input.value;
  }
}

export function activateRunNotebook(
  app: JupyterFrontEnd,
  jobs: IJobsPanel,
  browser: IDefaultFileBrowser | null,
  notebooks: INotebookTracker | null,
  palette: ICommandPalette | null,
  transport: Transport = pageTransport()
): void {
  const selected = (): string | null => {
    if (!browser) {
      return null;
    }
    for (const item of browser.selectedItems()) {
      return item.type === 'notebook' ? item.path : null;
    }
    return null;
  };

  /** The notebook meant: the command's `path`, else the file browser's (context menu),
   * else the current notebook's. */
  const target = (args: Record<string, unknown>, fromMenu: boolean): string | null => {
    if (typeof args['path'] === 'string' && args['path']) {
      return args['path'];
    }
    if (fromMenu) {
      return selected();
    }
    return notebooks?.currentWidget?.context.path ?? null;
  };

  const run = async (path: string): Promise<void> => {
    const open = notebooks?.find(w => w.context.path === path);
    const answer = await showDialog({
      title: `Run ${path.split('/').pop()} as a job`,
      body: new ParametersBody(path),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run as job' })],
      focusNodeSelector: 'textarea'
    });
    if (!answer.button.accept) {
      return;
    }
    const parameters = parseParameters(answer.value ?? '');
    if (typeof parameters === 'string') {
      Notification.error(parameters, { autoClose: false });
      return;
    }
    try {
      if (open?.context.model.dirty) {
        await open.context.save();
      }
      const job = await transport.request<Job>('POST', 'jobs', { kind: 'notebook', spec: { path, parameters }, start: true });
      jobs.panel.model.applyJob(job, true);
      jobs.openJob(job.id);
    } catch (err) {
      Notification.error(`${path} could not be started: ${errorMessage(err)}`, { autoClose: false });
    }
  };

  app.commands.addCommand(RUN_NOTEBOOK, {
    label: args => (args['isContextMenu'] ? 'Run as Job' : RUN_NOTEBOOK_LABEL),
    caption: 'Run this notebook as a supervised jobctl job: live progress per cell, Stop, an executed copy',
    icon: args => (args['isPalette'] ? undefined : runIcon),
    isEnabled: args => target(args, Boolean(args['isContextMenu'])) !== null,
    execute: async args => {
      const path = target(args, Boolean(args['isContextMenu']));
      if (path) {
        await run(path);
      }
    }
  });
  app.contextMenu.addItem({
    command: RUN_NOTEBOOK,
    args: { isContextMenu: true },
    selector: '.jp-DirListing-item[data-file-type="notebook"]',
    rank: 3
  });
  palette?.addItem({ command: RUN_NOTEBOOK, category: PALETTE_CATEGORY, args: { isPalette: true } });
}

export const runNotebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobctl:run-notebook',
  description: 'Run a notebook as a jobctl job (file browser, notebook toolbar, palette).',
  autoStart: true,
  requires: [IJobsPanel],
  optional: [IDefaultFileBrowser, INotebookTracker, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    jobs: IJobsPanel,
    browser: IDefaultFileBrowser | null,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null
  ) => activateRunNotebook(app, jobs, browser, notebooks, palette)
};
