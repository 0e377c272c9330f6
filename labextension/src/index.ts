/**
 * The labextension's plugins. Today: the job view as the renderer of jobctl outputs.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { RENDERER_RANK, createRendererFactory } from './mime';

const rendererPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobctl:renderer',
  description: 'Renders jobctl outputs as live job views, with or without a kernel.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (_app: JupyterFrontEnd, rendermime: IRenderMimeRegistry) => {
    rendermime.addFactory(createRendererFactory(), RENDERER_RANK);
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [rendererPlugin];
export default plugins;
