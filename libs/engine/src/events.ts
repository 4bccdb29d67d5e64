// A minimal typed event emitter: the listener interface names every event and its payload, so
// the compiler checks what the engine tells the coordinator and the dashboard.

/** A listener interface: event name → handler of one payload. */
export type ListenerMap<L> = { [K in keyof L]: (payload: any) => void };

export class TypedEmitter<L extends ListenerMap<L>> {
  private readonly handlers = new Map<keyof L, Set<L[keyof L]>>();

  /** Adds a handler; returns a function that removes it. */
  on<K extends keyof L>(event: K, handler: L[K]): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }

  off<K extends keyof L>(event: K, handler: L[K]): void {
    this.handlers.get(event)?.delete(handler);
  }

  /**
   * Calls every handler of `event` with `payload`. A handler that throws does not stop the others
   * nor the emitter's owner: the error goes to `onHandlerError`.
   */
  emit<K extends keyof L>(event: K, payload: Parameters<L[K]>[0]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as (p: Parameters<L[K]>[0]) => void)(payload);
      } catch (err) {
        this.onHandlerError(event, err);
      }
    }
  }

  /** What to do with an error thrown by a handler. Default: print it (training goes on). */
  protected onHandlerError(event: keyof L, err: unknown): void {
    console.error(`stride: a handler of the '${String(event)}' event threw:`, err);
  }
}
