export declare function sleep(ms: number): Promise<void>;

export interface WaitOptions {
  /** Default 20 000. */
  timeoutMs?: number;
  /** Default 20. */
  intervalMs?: number;
}

/** What waitFor keeps waiting on. */
export type Falsy = false | 0 | '' | null | undefined;

export declare function waitFor<T>(what: string, check: () => T | Falsy | Promise<T | Falsy>, options?: WaitOptions): Promise<T>;

export declare function freePort(): Promise<number>;
