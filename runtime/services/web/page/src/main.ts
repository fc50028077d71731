// The lab's web page: a live status board, the process events and a log tail, all over Connect
// from the browser (no proxy): the supervisor, health and logger services answer HTTP/1.1 on a
// second loopback port with the same handlers that answer gRPC.
//
// The page itself holds no secret: the lab's token comes in the URL fragment that
// `runtime-lab status` prints (#token=...), which browsers never send to a server, and stays in
// this tab's sessionStorage.
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { HealthService, HealthState } from "./gen/runtime/v1/health_pb.js";
import { LogLevel, LoggerService, type LogEntry } from "./gen/runtime/v1/logger_pb.js";
import {
  ProcessEventKind,
  ProcessState,
  SupervisorService,
  type ProcessEvent,
  type ProcessInfo,
} from "./gen/runtime/v1/supervisor_pb.js";

interface LabEndpoints {
  lab_dir: string;
  supervisor: string;
  health: string;
  logger: string;
}

const MAX_ROWS = 200; // bounded panes: the logger keeps the history, the page shows the tail
const TRAIL = 5; // health states kept per row: a kill's UNHEALTHY lasts well under a second
const RECONNECT_MS = 1000;

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;

function readToken(): string {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("lab-token", fromHash);
    history.replaceState(null, "", location.pathname); // keep the token out of the address bar
  }
  return sessionStorage.getItem("lab-token") ?? "";
}

function transport(baseUrl: string, token: string): Transport {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return await next(req);
  };
  return createConnectTransport({ baseUrl, interceptors: [auth], useBinaryFormat: false });
}

function say(text: string, isError = false): void {
  const el = $("#banner");
  el.textContent = text;
  el.className = isError ? "banner error" : "banner";
}

function append(list: HTMLElement, text: string, cls = ""): void {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  list.prepend(li);
  while (list.children.length > MAX_ROWS) list.lastElementChild?.remove();
}

function time(ms: bigint | number): string {
  return new Date(Number(ms)).toLocaleTimeString();
}

// -- the board: one row per instance, from the supervisor's list and the health stream --------

const rows = new Map<string, HTMLTableRowElement>();
const health = new Map<string, { state: HealthState; reason: string; trail: string[] }>();

function row(instance: string): HTMLTableRowElement {
  let tr = rows.get(instance);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.instance = instance;
    for (const col of ["service", "instance", "pid", "state", "health", "reason", "trail", "action"]) {
      const td = document.createElement("td");
      td.dataset.col = col;
      tr.append(td);
    }
    $("#board tbody").append(tr);
    rows.set(instance, tr);
  }
  return tr;
}

function cell(tr: HTMLTableRowElement, col: string): HTMLTableCellElement {
  return tr.querySelector(`td[data-col="${col}"]`) as HTMLTableCellElement;
}

function drawHealth(instance: string): void {
  const h = health.get(instance);
  const tr = row(instance);
  const name = h ? HealthState[h.state] : "";
  cell(tr, "health").textContent = name;
  cell(tr, "reason").textContent = h?.reason ?? "";
  cell(tr, "trail").textContent = h?.trail.join(" → ") ?? "";
  tr.dataset.health = name;
}

function drawProcess(p: ProcessInfo, kill: (p: ProcessInfo) => void): void {
  const tr = row(p.instanceId);
  cell(tr, "service").textContent = p.service;
  cell(tr, "instance").textContent = p.instanceId;
  cell(tr, "pid").textContent = p.pid ? String(p.pid) : "";
  cell(tr, "state").textContent = ProcessState[p.state];
  tr.dataset.state = ProcessState[p.state];
  const action = cell(tr, "action");
  if (!action.firstChild) {
    const button = document.createElement("button");
    button.textContent = "kill";
    button.className = "kill";
    button.onclick = () => kill(p);
    action.append(button);
  }
  drawHealth(p.instanceId);
}

async function main(): Promise<void> {
  const token = readToken();
  const lab = (await (await fetch("lab.json")).json()) as LabEndpoints;
  $("#lab").textContent = lab.lab_dir;
  if (!token) {
    say("No token: open the link `runtime-lab status` prints (it ends in #token=...).", true);
    return;
  }
  const supervisor = createClient(SupervisorService, transport(lab.supervisor, token));
  const healthClient = createClient(HealthService, transport(lab.health, token));
  const logger = createClient(LoggerService, transport(lab.logger, token));

  const kill = async (p: ProcessInfo): Promise<void> => {
    try {
      const r = await supervisor.signalProcess({ service: p.service, instanceId: p.instanceId, signal: "SIGKILL" });
      say(`sent ${r.signal} to ${r.instanceId} (pid ${r.pid})`);
    } catch (err) {
      say(`kill failed: ${ConnectError.from(err).message}`, true);
    }
  };
  const refresh = async (): Promise<void> => {
    const list = await supervisor.listProcesses({});
    for (const p of list.processes) drawProcess(p, kill);
  };

  // Each stream reconnects when its service restarts (killing the health service is a lesson too).
  const follow = async (name: string, run: () => Promise<void>): Promise<void> => {
    for (;;) {
      try {
        await run();
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated) {
          say(`${name}: ${e.rawMessage}`, true);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
  };

  void follow("health", async () => {
    for await (const ev of healthClient.watchHealth({})) {
      const trail = [...(health.get(ev.instanceId)?.trail ?? []), HealthState[ev.newState]];
      if (!ev.snapshot && trail.length > 1 && trail.at(-1) === trail.at(-2)) trail.pop();
      health.set(ev.instanceId, { state: ev.newState, reason: ev.reason, trail: trail.slice(-TRAIL) });
      if (rows.has(ev.instanceId)) drawHealth(ev.instanceId);
    }
  });
  void follow("events", async () => {
    for await (const ev of supervisor.watchProcessEvents({ replay: 20 })) {
      showEvent(ev);
      await refresh();
    }
  });
  let tail = new AbortController();
  const startTail = (): void => {
    tail.abort();
    tail = new AbortController();
    const signal = tail.signal;
    const cid = ($("#cid") as HTMLInputElement).value.trim();
    $("#logs").replaceChildren();
    void follow("logs", async () => {
      if (signal.aborted) return;
      for await (const e of logger.subscribeLogs({ correlationId: cid, minLevel: LogLevel.INFO }, { signal })) {
        showLog(e);
      }
    });
  };
  $("#cid").addEventListener("change", startTail);
  startTail();
  await refresh();
  say("live");
  document.body.dataset.ready = "1";
}

function showEvent(ev: ProcessEvent): void {
  append($("#events"), `${time(ev.timestamp)} ${ev.instanceId} ${ProcessEventKind[ev.kind]} ${ev.reason}`);
}

function showLog(e: LogEntry): void {
  const cid = e.correlationId ? ` [${e.correlationId}]` : "";
  append($("#logs"), `${time(e.timestamp)} ${LogLevel[e.level]} ${e.instanceId || e.serviceName}${cid}: ${e.message}`,
    `level-${LogLevel[e.level]}`);
}

main().catch((err: unknown) => say(`the page could not start: ${String(err)}`, true));
