import { Logger } from '@nestjs/common';

export type Listener<T> = (event: T) => Promise<void> | void;

/**
 * A typed in-process event channel whose `emit` waits for every listener, so whoever emits
 * knows the readers are done (POST /refresh answers after the summary cache is primed). A
 * listener that throws is logged and never affects the others or the emitter.
 */
export class AsyncEvents<T> {
  private readonly listeners: Listener<T>[] = [];

  constructor(private readonly logger: Logger) {}

  /** Subscribes; returns the unsubscribe function. */
  on(listener: Listener<T>): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  async emit(event: T): Promise<void> {
    await Promise.all(
      this.listeners.map(async (listener) => {
        try {
          await listener(event);
        } catch (err) {
          this.logger.warn(`event listener failed: ${(err as Error).message}`);
        }
      }),
    );
  }
}
