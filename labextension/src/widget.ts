/**
 * The anywidget front end: the same job view for hosts without the labextension
 * (VS Code, Colab, voila, or Lab with it disabled). Built by esbuild into one self-contained
 * ESM file, `jupyter_jobctl/static/widget.js` — no @jupyterlab/* imports possible here.
 *
 * On a Jupyter page it talks to the page's server directly (so it outlives the kernel);
 * elsewhere it relays through the widget's comm, and the kernel calls the server.
 */

import uplotCss from 'uplot/dist/uPlot.min.css';

import viewCss from './style/base.css';
import { CommModel, CommTransport } from './api/comm';
import { PageTransport, readPageConfig } from './api/page';
import { Transport } from './api/transport';
import { ViewHost } from './host';
import { parseTarget } from './target';

/** The part of anywidget's model API this uses. */
export interface WidgetModel extends CommModel {
  get(name: string): unknown;
  on(name: string, handler: (...args: unknown[]) => void): void;
  off(name: string, handler?: (...args: unknown[]) => void): void;
}

const STYLE_ID = 'jupyter-jobctl-widget-styles';

function injectStyles(doc: Document): void {
  if (doc.getElementById(STYLE_ID)) {
    return;
  }
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = `${uplotCss}\n${viewCss}`;
  doc.head.appendChild(style);
}

function target(model: WidgetModel) {
  const view = model.get('view');
  return parseTarget(view === 'jobs' ? { view: 'jobs' } : { job_id: model.get('job_id') });
}

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  injectStyles(el.ownerDocument);
  const doc = el.ownerDocument;
  let comm: CommTransport | null = null;
  let transport: Transport;
  if (readPageConfig(doc)) {
    transport = new PageTransport({ document: doc });
  } else {
    comm = new CommTransport(model);
    transport = comm;
  }
  el.classList.add('jobctl-output');
  const host = new ViewHost(el, transport);
  host.show(target(model));
  const onChange = () => host.show(target(model));
  model.on('change:job_id', onChange);
  model.on('change:view', onChange);
  return () => {
    model.off('change:job_id', onChange);
    model.off('change:view', onChange);
    host.dispose();
    comm?.dispose();
  };
}

export default { render };
