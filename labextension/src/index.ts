/**
 * The labextension's plugins: the job view as the renderer of jobctl outputs, the Jobs side
 * panel (with its detail tabs, forms, commands and notifications) and its launcher items.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { RENDERER_RANK, createRendererFactory } from './mime';
import { launcherPlugin } from './panel/launcher';
import { panelPlugin } from './panel/plugin';

const rendererPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobctl:renderer',
  description: 'Renders jobctl outputs as live job views, with or without a kernel.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (_app: JupyterFrontEnd, rendermime: IRenderMimeRegistry) => {
    rendermime.addFactory(createRendererFactory(), RENDERER_RANK);
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [rendererPlugin, panelPlugin, launcherPlugin];
export default plugins;
