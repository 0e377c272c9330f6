/**
 * Launcher items of the jobs panel (needs "@jupyterlab/launcher" in package.json
 * dependencies; rename to launcher.ts and add `launcherPlugin` to index.ts's plugins).
 */

import { JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';

import { CommandIDs } from './commands';
import { IJobsPanel } from './plugin';

export const launcherPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobctl:panel-launcher',
  description: 'Launcher items for new training jobs, test batches and the jobs panel.',
  autoStart: true,
  requires: [IJobsPanel, ILauncher],
  activate: (_app, _panel: IJobsPanel, launcher: ILauncher) => {
    let rank = 0;
    for (const command of [CommandIDs.newTraining, CommandIDs.newTestBatch, CommandIDs.openPanel, CommandIDs.stopAll]) {
      launcher.add({ command, category: 'Jobs', rank: rank++ });
    }
  }
};
