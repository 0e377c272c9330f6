/**
 * The side panel's JupyterLab plugin: the jobs panel in the left area, detail tabs in the
 * main area, notifications when jobs end, and the commands (palette; launcher through the
 * optional launcher plugin).
 *
 * Settings: `jupyter-jobctl:panel` (schema/panel.json): notifications on/off and which
 * endings notify.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, WidgetTracker, showDialog } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { addIcon, codeCheckIcon, listIcon, stopIcon } from '@jupyterlab/ui-components';
import { Token } from '@lumino/coreutils';

import { Transport } from '../api/transport';
import { isPlainId } from '../api/types';
import { labConfirm } from '../confirm';
import { pageTransport } from '../mime';
import { COMMAND_LABELS, CommandIDs, PALETTE_CATEGORY, listStoppable, stopAllMessage, stopJobs } from './commands';
import { JobDetailWidget } from './detail';
import { EndNotifier, NotifySink, readNotifySettings } from './notify';
import { JobsPanel, PANEL_ID } from './panel';

export const PANEL_PLUGIN_ID = 'jupyter-jobctl:panel';

/** What other plugins (the launcher items) may use. */
export interface IJobsPanel {
  readonly panel: JobsPanel;
  openJob(jobId: string): void;
}

export const IJobsPanel = new Token<IJobsPanel>('jupyter-jobctl:IJobsPanel', 'The jobctl jobs panel.');

const notificationSink: NotifySink = {
  emit(message, type, options) {
    Notification.emit(message, type, {
      autoClose: options.autoClose,
      actions: options.actions.map(a => ({ label: a.label, callback: () => a.callback() }))
    });
  }
};

export function activatePanel(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  settings: ISettingRegistry | null,
  restorer: ILayoutRestorer | null,
  transport: Transport = pageTransport()
): IJobsPanel {
  const { commands, shell } = app;
  const tracker = new WidgetTracker<JobDetailWidget>({ namespace: 'jobctl-detail' });

  const openJob = (jobId: string): void => {
    if (!isPlainId(jobId)) {
      return;
    }
    const existing = tracker.find(w => w.jobId === jobId);
    if (existing) {
      shell.activateById(existing.id);
      return;
    }
    const label = panel.model.get(jobId)?.name ?? '';
    const widget = new JobDetailWidget(transport, jobId, label, job => {
      panel.model.applyJob(job, true);
      openJob(job.id);
    });
    void tracker.add(widget);
    shell.add(widget, 'main');
    shell.activateById(widget.id);
  };

  const panel = new JobsPanel({
    transport,
    open: openJob,
    confirm: labConfirm,
    announce: (message, type) => {
      Notification.emit(message, type, { autoClose: 6000 });
    }
  });
  panel.title.icon = listIcon;
  panel.title.caption = 'Jobs';
  shell.add(panel, 'left', { rank: 600 });
  if (restorer) {
    restorer.add(panel, PANEL_ID);
    void restorer.restore(tracker, {
      command: CommandIDs.openJob,
      args: w => ({ id: w.jobId }),
      name: w => w.jobId
    });
  }

  // detail tabs follow the job's name
  panel.model.changed.connect(change => {
    tracker.forEach(w => {
      if (change.ids.has(w.jobId)) {
        const job = panel.model.get(w.jobId);
        if (job) {
          w.setLabel(job.name);
        }
      }
    });
  });

  const notifier = new EndNotifier(notificationSink, openJob);
  panel.transitions.connect(t => notifier.onTransition(t));
  if (settings) {
    void settings
      .load(PANEL_PLUGIN_ID)
      .then(s => {
        const apply = () => {
          notifier.settings = readNotifySettings(s.composite);
        };
        apply();
        s.changed.connect(apply);
      })
      .catch(err => console.warn('jobctl: panel settings unavailable', err));
  }

  const showPanel = () => {
    shell.activateById(panel.id);
  };

  commands.addCommand(CommandIDs.newTraining, {
    label: COMMAND_LABELS[CommandIDs.newTraining],
    caption: 'Create a training job (the demo trainer by default)',
    icon: args => (args['isLauncher'] ? addIcon : undefined),
    execute: () => {
      showPanel();
      panel.openForm('training');
    }
  });
  commands.addCommand(CommandIDs.newTestBatch, {
    label: COMMAND_LABELS[CommandIDs.newTestBatch],
    caption: 'Run pytest as a supervised job',
    icon: args => (args['isLauncher'] ? codeCheckIcon : undefined),
    execute: () => {
      showPanel();
      panel.openForm('test_batch');
    }
  });
  commands.addCommand(CommandIDs.openPanel, {
    label: COMMAND_LABELS[CommandIDs.openPanel],
    caption: 'Show every job and test batch',
    icon: args => (args['isLauncher'] ? listIcon : undefined),
    execute: showPanel
  });
  commands.addCommand(CommandIDs.stopAll, {
    label: COMMAND_LABELS[CommandIDs.stopAll],
    caption: 'Ask every pending, starting, running or paused job to stop',
    icon: args => (args['isLauncher'] ? stopIcon : undefined),
    execute: async () => {
      let jobs;
      try {
        jobs = await listStoppable(transport);
      } catch (err) {
        Notification.error(`Could not list the running jobs: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      if (!jobs.length) {
        Notification.info('No running jobs to stop', { autoClose: 4000 });
        return;
      }
      const n = jobs.length;
      const answer = await showDialog({
        title: 'Stop all running jobs?',
        body: `${n} job${n === 1 ? '' : 's'} will be asked to stop. Their work so far stays recorded.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: `Stop ${n} job${n === 1 ? '' : 's'}` })]
      });
      if (!answer.button.accept) {
        return;
      }
      const result = await stopJobs(transport, jobs, job => panel.model.applyJob(job, true));
      const text = stopAllMessage(result);
      if (result.failed.length) {
        Notification.warning(text, { autoClose: false });
      } else {
        Notification.success(text, { autoClose: 5000 });
      }
    }
  });
  commands.addCommand(CommandIDs.openJob, {
    label: args => (typeof args['id'] === 'string' ? `Open job ${args['id']}` : COMMAND_LABELS[CommandIDs.openJob]),
    execute: args => {
      if (typeof args['id'] === 'string') {
        openJob(args['id']);
      }
    }
  });
  if (palette) {
    for (const command of [CommandIDs.newTraining, CommandIDs.newTestBatch, CommandIDs.openPanel, CommandIDs.stopAll]) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
  }

  panel.start();
  return { panel, openJob };
}

export const panelPlugin: JupyterFrontEndPlugin<IJobsPanel> = {
  id: PANEL_PLUGIN_ID,
  description: 'The jobs panel: every job and test batch, live; forms; notifications; commands.',
  autoStart: true,
  provides: IJobsPanel,
  optional: [ICommandPalette, ISettingRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settings: ISettingRegistry | null,
    restorer: ILayoutRestorer | null
  ) => activatePanel(app, palette, settings, restorer)
};

export default panelPlugin;
