// The active faults of this instance and the resources they hold (runtime/agent/faults.py FaultSet),
// with the same caps as the Python agent and the chaos service (runtime/services/chaos/rules.py):
//
//   DELAY         wait delay_ms (at most MAX_DELAY_MS) before the handler runs
//   ERROR_INJECT  with probability error_rate: UNAVAILABLE "injected fault <id>" (logged as ERROR)
//   PACKET_LOSS   with probability packet_loss_pct/100: the call is dropped (UNAVAILABLE)
//   CPU_HOG       cpu_threads busy worker threads (real OS threads), at most MAX_CPU_THREADS in all
//   MEMORY_LEAK   memory_mb MiB allocated and written (RSS grows), at most MAX_MEMORY_MB in all;
//                 released (and collected) when the fault goes
//   CRASH         not here: the chaos service asks the supervisor to SIGKILL the instance
import type { Worker } from "node:worker_threads";
import { Code, ConnectError } from "@connectrpc/connect";
import { FaultType, type ActiveFault, type FaultConfig } from "../gen/runtime/v1/chaos_pb";
import type { JsonLog } from "../jsonlog";
import { sleep } from "./wakeup";

export const MAX_DELAY_MS = 10_000;
export const MAX_CPU_THREADS = 4;
export const MAX_MEMORY_MB = 256;
const MEMORY_CHUNK_MB = 16; // allocate in steps, yielding to the event loop in between
const MIB = 1024 * 1024;

/** `DELAY` for 1. */
export function kindName(kind: number): string {
  return FaultType[kind] ?? `TYPE_${kind}`;
}

function paramsText(cfg: FaultConfig): string {
  const p = cfg.params;
  switch (cfg.type) {
    case FaultType.DELAY:
      return `delay_ms=${p?.delayMs ?? 0}`;
    case FaultType.PACKET_LOSS:
      return `packet_loss_pct=${p?.packetLossPct ?? 0}`;
    case FaultType.CPU_HOG:
      return `cpu_threads=${p?.cpuThreads ?? 0}`;
    case FaultType.MEMORY_LEAK:
      return `memory_mb=${p?.memoryMb ?? 0}`;
    case FaultType.ERROR_INJECT:
      return `error_rate=${p?.errorRate ?? 0}`;
    default:
      return "";
  }
}

// Released memory goes back to the OS only once V8 collects the buffers: ask for a collection
// when a leak ends instead of waiting for heap pressure that an idle calculator never builds.
// node:v8, node:vm and node:worker_threads are loaded on the first such fault, not at start-up
// (~6 ms CPU of every start for what most instances never use).
let collect: (() => void) | undefined;
function collectGarbage(): void {
  if (!collect) {
    (require("node:v8") as typeof import("node:v8")).setFlagsFromString("--expose-gc");
    collect = (require("node:vm") as typeof import("node:vm")).runInNewContext("gc") as () => void;
  }
  collect();
}

/** `n` worker threads spinning until stop(). */
class CpuHog {
  readonly workers: Worker[];
  constructor(n: number) {
    const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
    this.workers = Array.from({ length: n }, () => {
      const w = new Worker("let x = 0; for (;;) { x++; }", { eval: true });
      w.unref();
      w.on("error", () => undefined); // terminate() ends the loop; nothing to report
      return w;
    });
  }
  stop(): void {
    for (const w of this.workers) void w.terminate();
  }
}

export class FaultSet {
  readonly faults = new Map<string, ActiveFault>();
  injected = 0; // calls failed or dropped on purpose
  delayed = 0;
  private readonly deadlines = new Map<string, number>(); // fault id -> performance.now() ms
  private readonly hogs = new Map<string, CpuHog>();
  private readonly memory = new Map<string, Buffer[]>();

  constructor(private readonly log: JsonLog) {}

  get cpuThreads(): number {
    let n = 0;
    for (const h of this.hogs.values()) n += h.workers.length;
    return n;
  }

  get memoryMb(): number {
    let n = 0;
    for (const chunks of this.memory.values()) n += chunks.length;
    return n * MEMORY_CHUNK_MB;
  }

  /** Make `faults` the active set: start what is new, release what went. */
  replace(faults: ActiveFault[]): void {
    const nowMs = Date.now();
    const wanted = new Map(faults.filter((f) => !(f.expiresAt && Number(f.expiresAt) <= nowMs)).map((f) => [f.faultId, f]));
    for (const id of [...this.faults.keys()]) if (!wanted.has(id)) this.drop(id, "cleared");
    for (const [id, fault] of wanted) {
      if (this.faults.has(id)) continue;
      this.faults.set(id, fault);
      if (fault.expiresAt) this.deadlines.set(id, performance.now() + (Number(fault.expiresAt) - nowMs));
      this.begin(fault);
    }
  }

  /** Drop every fault (dead-man switch, stop); returns how many there were. */
  clear(reason: string): number {
    const n = this.faults.size;
    for (const id of [...this.faults.keys()]) this.drop(id, reason);
    return n;
  }

  /** Drop the faults whose TTL has passed; returns their ids. */
  expire(now = performance.now()): string[] {
    const gone = [...this.deadlines].filter(([, deadline]) => deadline <= now).map(([id]) => id);
    for (const id of gone) this.drop(id, "its duration is over");
    return gone;
  }

  private begin(fault: ActiveFault): void {
    const cfg = fault.config;
    if (!cfg) return;
    this.log.warn(`fault ${fault.faultId} active: ${kindName(cfg.type ?? -1)} ${paramsText(cfg)}`, { fault_id: fault.faultId });
    if (cfg.type === FaultType.CPU_HOG) {
      const asked = cfg.params?.cpuThreads ?? 0;
      const n = Math.max(0, Math.min(asked, MAX_CPU_THREADS - this.cpuThreads));
      if (n < asked) this.log.warn(`fault ${fault.faultId}: only ${n} busy threads (cap ${MAX_CPU_THREADS} in all)`);
      if (n) this.hogs.set(fault.faultId, new CpuHog(n));
    } else if (cfg.type === FaultType.MEMORY_LEAK) {
      this.memory.set(fault.faultId, []); // filled by growMemory() between event loop turns
    }
  }

  /** Allocate what the memory leaks ask for, one chunk at a time (the loop keeps serving). */
  async growMemory(): Promise<void> {
    for (const [id, chunks] of [...this.memory]) {
      const fault = this.faults.get(id);
      if (!fault) continue;
      const want = Math.min(Number(fault.config?.params?.memoryMb ?? 0), MAX_MEMORY_MB);
      while (chunks.length * MEMORY_CHUNK_MB < want && this.memoryMb + MEMORY_CHUNK_MB <= MAX_MEMORY_MB) {
        chunks.push(Buffer.alloc(MEMORY_CHUNK_MB * MIB, 0x5a)); // written, so it counts in RSS
        await sleep(0);
        if (!this.memory.has(id)) break;
      }
    }
  }

  private drop(id: string, reason: string): void {
    const fault = this.faults.get(id);
    this.faults.delete(id);
    this.deadlines.delete(id);
    this.hogs.get(id)?.stop();
    this.hogs.delete(id);
    if (this.memory.delete(id)) collectGarbage();
    if (fault) this.log.warn(`fault ${id} (${kindName(fault.config?.type ?? -1)}) removed: ${reason}`, { fault_id: id });
  }

  /** Delay, fail or drop one call as the active faults say (throws ConnectError to fail it). */
  async apply(procedure: string): Promise<void> {
    for (const fault of [...this.faults.values()]) {
      const cfg = fault.config;
      const p = cfg?.params;
      if (!cfg || !p) continue;
      if (cfg.type === FaultType.DELAY && p.delayMs > 0) {
        this.delayed += 1;
        await sleep(Math.min(p.delayMs, MAX_DELAY_MS));
      } else if (cfg.type === FaultType.PACKET_LOSS && Math.random() * 100 < p.packetLossPct) {
        this.injected += 1;
        this.log.warn(`dropped ${procedure} (packet loss fault ${fault.faultId})`);
        throw new ConnectError(`injected packet loss: call dropped (fault ${fault.faultId})`, Code.Unavailable);
      } else if (cfg.type === FaultType.ERROR_INJECT && Math.random() < p.errorRate) {
        this.injected += 1;
        this.log.error(`injected error into ${procedure} (fault ${fault.faultId})`);
        throw new ConnectError(`injected fault ${fault.faultId}`, Code.Unavailable);
      }
    }
  }
}
