/**
 * A virtualised list in plain DOM: fixed row height, only the rows in (and a little around)
 * the viewport exist, each positioned absolutely inside a spacer as tall as the whole list.
 * Rows are recycled by key, so a row keeps its element (and its focus) while it stays in
 * view; scrolling 2 000 rows touches a couple of dozen elements per frame.
 *
 * Keyboard: the list is one tab stop (roving tabindex on rows); ArrowUp/ArrowDown/Home/End/
 * PageUp/PageDown move between rows (scrolling rows into existence as needed), Enter opens,
 * Tab goes on into the focused row's buttons.
 */

export interface VirtualListOptions<T> {
  rowHeight: number;
  /** Rows rendered beyond each edge of the viewport. */
  overscan?: number;
  key(item: T): string;
  /** A new, empty row element (recycled between items). */
  create(): HTMLElement;
  /** Fill a row for an item (the same element may have shown another item before). */
  render(el: HTMLElement, item: T, index: number): void;
  /** The user opened a row (Enter on it). */
  activate?(item: T): void;
  /** The rendered range reached within `nearEnd` rows of the end (load more). */
  nearEnd?(): void;
  nearEndRows?: number;
  /** Accessible name of the list. */
  label: string;
}

export class VirtualList<T> {
  readonly node: HTMLElement;
  private readonly spacer: HTMLElement;
  private items: readonly T[] = [];
  private readonly rows = new Map<string, HTMLElement>();
  private readonly pool: HTMLElement[] = [];
  private focusedKey: string | null = null;
  private frame = 0;
  private lastStart = -1;
  private lastEnd = -1;
  private dirty = true;
  private readonly overscan: number;
  private readonly nearEndRows: number;
  private viewportHeight = 0;
  private resizeObserver: ResizeObserver | null = null;

  constructor(private readonly options: VirtualListOptions<T>) {
    this.overscan = options.overscan ?? 6;
    this.nearEndRows = options.nearEndRows ?? 30;
    this.node = document.createElement('div');
    this.node.className = 'jobctl-vlist';
    this.node.setAttribute('role', 'list');
    this.node.setAttribute('aria-label', options.label);
    this.spacer = document.createElement('div');
    this.spacer.className = 'jobctl-vlist-spacer';
    this.node.appendChild(this.spacer);
    this.node.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.node.addEventListener('keydown', ev => this.onKey(ev));
    this.node.addEventListener('focusin', ev => {
      const row = (ev.target as HTMLElement).closest?.('.jobctl-vrow') as HTMLElement | null;
      if (row && row.dataset.key) {
        this.setFocusKey(row.dataset.key);
      }
    });
    if (typeof ResizeObserver === 'function') {
      this.resizeObserver = new ResizeObserver(() => {
        this.viewportHeight = this.node.clientHeight;
        this.schedule();
      });
      this.resizeObserver.observe(this.node);
    }
  }

  get length(): number {
    return this.items.length;
  }

  /** New items (same or other keys); renders on the next frame, or now with `sync`. */
  setItems(items: readonly T[], sync = false): void {
    this.items = items;
    this.dirty = true;
    if (sync) {
      this.update();
    } else {
      this.schedule();
    }
  }

  /** Re-render the rows in view (their items' data changed). */
  refresh(sync = false): void {
    this.dirty = true;
    if (sync) {
      this.update();
    } else {
      this.schedule();
    }
  }

  /** The element of an item if it is rendered. */
  rowOf(key: string): HTMLElement | undefined {
    return this.rows.get(key);
  }

  /** Scroll an item into view (it gets rendered). */
  scrollToKey(key: string, focus = false): void {
    const i = this.items.findIndex(it => this.options.key(it) === key);
    if (i < 0) {
      return;
    }
    this.scrollToIndex(i);
    if (focus) {
      this.setFocusKey(key);
      this.rows.get(key)?.focus();
    }
  }

  dispose(): void {
    this.resizeObserver?.disconnect();
    if (this.frame) {
      cancelAnimationFrame(this.frame);
    }
  }

  private scrollToIndex(i: number): void {
    const h = this.options.rowHeight;
    const top = i * h;
    const view = this.height();
    if (top < this.node.scrollTop) {
      this.node.scrollTop = top;
    } else if (top + h > this.node.scrollTop + view) {
      this.node.scrollTop = top + h - view;
    }
    this.update();
  }

  private height(): number {
    return this.node.clientHeight || this.viewportHeight || 600;
  }

  private schedule(): void {
    if (this.frame) {
      return;
    }
    if (typeof requestAnimationFrame !== 'function') {
      this.update();
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update();
    });
  }

  /** Render the rows in view now. */
  update(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const h = this.options.rowHeight;
    const n = this.items.length;
    this.spacer.style.height = `${n * h}px`;
    const top = this.node.scrollTop;
    const view = this.height();
    const start = Math.max(0, Math.floor(top / h) - this.overscan);
    const end = Math.min(n, Math.ceil((top + view) / h) + this.overscan);
    if (!this.dirty && start === this.lastStart && end === this.lastEnd) {
      return;
    }
    this.dirty = false;
    this.lastStart = start;
    this.lastEnd = end;
    const wanted = new Map<string, number>();
    for (let i = start; i < end; i++) {
      wanted.set(this.options.key(this.items[i]), i);
    }
    // a focused row stays in the DOM (moved out of view) so focus is not lost while scrolling
    for (const [key, el] of this.rows) {
      const keepFocused = key === this.focusedKey && el.contains(document.activeElement) && this.hasKey(key);
      if (!wanted.has(key) && !keepFocused) {
        this.rows.delete(key);
        el.remove();
        this.pool.push(el);
      }
    }
    let anyTabbable = false;
    for (const [key, i] of wanted) {
      let el = this.rows.get(key);
      if (!el) {
        el = this.pool.pop() ?? this.make();
        this.rows.set(key, el);
        el.dataset.key = key;
        this.spacer.appendChild(el);
      }
      el.style.transform = `translateY(${i * h}px)`;
      el.setAttribute('aria-setsize', String(n));
      el.setAttribute('aria-posinset', String(i + 1));
      this.options.render(el, this.items[i], i);
      const tabbable = key === this.focusedKey;
      el.tabIndex = tabbable ? 0 : -1;
      anyTabbable = anyTabbable || tabbable;
    }
    // DOM order = visual order (screen readers and find-in-page read the DOM)
    let cursor = this.spacer.firstElementChild;
    for (const key of wanted.keys()) {
      const el = this.rows.get(key)!;
      if (el !== cursor) {
        this.spacer.insertBefore(el, cursor);
      } else {
        cursor = cursor.nextElementSibling;
      }
    }
    if (!anyTabbable && wanted.size) {
      // nothing focused yet (or it went away): the first rendered row is the list's tab stop
      const firstKey = this.options.key(this.items[start]);
      const el = this.rows.get(firstKey);
      if (el) {
        el.tabIndex = 0;
      }
    }
    if (this.options.nearEnd && end >= n - this.nearEndRows) {
      this.options.nearEnd();
    }
  }

  private hasKey(key: string): boolean {
    return this.items.some(it => this.options.key(it) === key);
  }

  private make(): HTMLElement {
    const el = this.options.create();
    el.classList.add('jobctl-vrow');
    el.setAttribute('role', 'listitem');
    el.style.position = 'absolute';
    el.style.left = '0';
    el.style.right = '0';
    el.style.top = '0';
    el.style.height = `${this.options.rowHeight}px`;
    return el;
  }

  private setFocusKey(key: string): void {
    if (this.focusedKey === key) {
      return;
    }
    const old = this.focusedKey !== null ? this.rows.get(this.focusedKey) : undefined;
    if (old) {
      old.tabIndex = -1;
    }
    this.focusedKey = key;
    const el = this.rows.get(key);
    if (el) {
      el.tabIndex = 0;
    }
  }

  private onKey(ev: KeyboardEvent): void {
    const target = ev.target as HTMLElement;
    if (!target.classList.contains('jobctl-vrow')) {
      return; // keys inside a row's buttons are theirs
    }
    const key = target.dataset.key ?? '';
    const i = this.items.findIndex(it => this.options.key(it) === key);
    if (i < 0) {
      return;
    }
    const page = Math.max(1, Math.floor(this.height() / this.options.rowHeight) - 1);
    let j: number | null = null;
    switch (ev.key) {
      case 'ArrowDown':
        j = Math.min(this.items.length - 1, i + 1);
        break;
      case 'ArrowUp':
        j = Math.max(0, i - 1);
        break;
      case 'PageDown':
        j = Math.min(this.items.length - 1, i + page);
        break;
      case 'PageUp':
        j = Math.max(0, i - page);
        break;
      case 'Home':
        j = 0;
        break;
      case 'End':
        j = this.items.length - 1;
        break;
      case 'Enter':
      case ' ':
        ev.preventDefault();
        this.options.activate?.(this.items[i]);
        return;
      default:
        return;
    }
    ev.preventDefault();
    this.scrollToKey(this.options.key(this.items[j]), true);
  }
}
