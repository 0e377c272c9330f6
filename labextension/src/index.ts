/**
 * The labextension's plugins: the job view as the renderer of jobctl outputs, the Jobs side
 * panel (with its detail tabs, forms, commands and notifications) and its launcher items.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { PageConfig } from '@jupyterlab/coreutils';

import { labConfirm } from './confirm';
import { RENDERER_RANK, createRendererFactory, pageTransport } from './mime';
import { launcherPlugin } from './panel/launcher';
import { runNotebookPlugin } from './panel/notebookjob';
import { panelPlugin } from './panel/plugin';
import { setPathOpener } from './view/files';

const rendererPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobctl:renderer',
  description: 'Renders jobctl outputs as live job views, with or without a kernel.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (app: JupyterFrontEnd, rendermime: IRenderMimeRegistry) => {
    rendermime.addFactory(createRendererFactory(pageTransport, labConfirm), RENDERER_RANK);
    // views link to files of the server (a notebook job's executed copy): open them here
    setPathOpener(path => void app.commands.execute('docmanager:open', { path }), PageConfig.getOption('serverRoot'));
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [rendererPlugin, panelPlugin, launcherPlugin, runNotebookPlugin];
export default plugins;
