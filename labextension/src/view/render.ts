/**
 * Render batching shared by the views: many changes in one frame (a burst of events) cost
 * one render, on the next animation frame (tests pass a `schedule` that runs at once).
 */

export type Schedule = (render: () => void) => void;

export function nextFrame(render: () => void): void {
  if (typeof requestAnimationFrame === 'function') {
    requestAnimationFrame(() => render());
  } else {
    setTimeout(render, 16);
  }
}

export class RenderQueue {
  private queued = false;

  /** `render` runs at most once per `schedule` call, and never once `alive()` is false. */
  constructor(
    private readonly schedule: Schedule,
    private readonly render: () => void,
    private readonly alive: () => boolean
  ) {}

  request(): void {
    if (this.queued || !this.alive()) {
      return;
    }
    this.queued = true;
    this.schedule(() => {
      this.queued = false;
      if (this.alive()) {
        this.render();
      }
    });
  }
}
