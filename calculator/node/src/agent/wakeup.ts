// A resettable event, the asyncio.Event of the agent's loops: one side set()s, the other waits,
// with a timeout and an AbortSignal, and never polls.

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class Wakeup {
  private waiters: Array<() => void> = [];
  private isSet = false;

  set(): void {
    this.isSet = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  clear(): void {
    this.isSet = false;
  }

  /** True when set (at once if already set), false after `timeoutMs` or when `signal` aborts. */
  wait(timeoutMs = Infinity, signal?: AbortSignal): Promise<boolean> {
    if (this.isSet) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (value: boolean) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.waiters = this.waiters.filter((w) => w !== onSet);
        resolve(value);
      };
      const onSet = () => finish(true);
      const onAbort = () => finish(false);
      this.waiters.push(onSet);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => finish(false), timeoutMs);
    });
  }
}
