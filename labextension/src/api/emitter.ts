/**
 * A minimal typed signal. The anywidget build has no Lumino, so the models use this instead.
 */

export type Listener<T> = (value: T) => void;

export class Emitter<T> {
  private listeners: Listener<T>[] = [];

  /** Returns the function that disconnects the listener. */
  connect(listener: Listener<T>): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter(l => l !== listener);
    };
  }

  emit(value: T): void {
    // a copy: a listener may disconnect itself (or others) while we iterate
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (err) {
        // one broken listener must not stop the stream for the others
        console.error('jobctl: listener failed', err);
      }
    }
  }

  clear(): void {
    this.listeners = [];
  }
}
