/**
 * Building DOM from text only. Job names, log lines and test ids come from whoever started
 * the job (and a `safe` renderer shows notebooks someone else wrote), so nothing here ever
 * parses a string as HTML: strings become text nodes, attributes are set one by one.
 */

export type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  title?: string;
  attrs?: Record<string, string>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) {
    el.className = props.class;
  }
  if (props.title) {
    el.title = props.title;
  }
  if (props.attrs) {
    for (const [k, v] of Object.entries(props.attrs)) {
      el.setAttribute(k, v);
    }
  }
  if (props.text !== undefined) {
    el.textContent = props.text;
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replace an element's children (text-only children become text nodes). */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  while (parent.firstChild) {
    parent.removeChild(parent.firstChild);
  }
  append(parent, ...children);
}

/** Set text only when it changed (cheap re-renders, stable selection while reading). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) {
    el.textContent = text;
  }
}

export function show(el: HTMLElement, visible: boolean): void {
  el.hidden = !visible;
}
