/**
 * The JupyterLab / Notebook 7 renderer of `application/vnd.jupyter.jobctl+json`.
 *
 * Ranked -20, above ipywidgets' widget view (-10), so a saved output renders the live job
 * view with no kernel at all (docs/architecture.md). `safe: true` means it also renders in
 * untrusted notebooks: the data is validated, everything is text, and nothing changes on
 * the server without the user's click.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { PageTransport } from './api/page';
import { Transport } from './api/transport';
import { ViewHost } from './host';
import { Confirm } from './view/actions';
import { parseTarget } from './target';

export const MIME_TYPE = 'application/vnd.jupyter.jobctl+json';
export const RENDERER_RANK = -20;

let sharedTransport: Transport | null = null;

/** One transport for every output of the page (they share the page's server and token). */
export function pageTransport(): Transport {
  if (!sharedTransport) {
    sharedTransport = new PageTransport();
  }
  return sharedTransport;
}

export class JobOutputWidget extends Widget implements IRenderMime.IRenderer {
  private readonly host: ViewHost;

  constructor(
    private readonly mimeType: string,
    transport: Transport,
    confirm?: Confirm
  ) {
    super();
    this.addClass('jobctl-output');
    this.host = new ViewHost(this.node, transport, confirm);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.host.show(parseTarget(model.data[this.mimeType]));
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.host.dispose(); // closes the view's socket
    super.dispose();
  }
}

/** `confirm`: how outputs ask before Delete (the plugin passes JupyterLab's dialog). */
export function createRendererFactory(
  transport: () => Transport = pageTransport,
  confirm?: Confirm
): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [MIME_TYPE],
    defaultRank: RENDERER_RANK,
    createRenderer: options => new JobOutputWidget(options.mimeType, transport(), confirm)
  };
}
