// What every TypeScript lab process shares: the env contract (runtime/identity.py), the lab's
// token rule (runtime.identity.token_refusal), gRPC status names and how numbers are written.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { CalculatorService } from "./gen/calculator/v1/calculator_pb";

/** `calculator.v1.CalculatorService`, from the generated descriptor (never typed twice). */
export const CALCULATOR_SERVICE = CalculatorService.typeName;
export const CORRELATION_HEADER = "x-correlation-id";
// Access (runtime/identity.py "Access"): every RPC but health and reflection carries the lab's token.
export const AUTH_HEADER = "authorization";
export const AUTH_SCHEME = "Bearer";
export const TOKEN_ENV = "LAB_TOKEN";
export const TOKEN_FILE = "token";
export const CORRELATION_ENV = "LAB_CORRELATION_ID";
/** Methods anyone may call (probes, `grpcurl list`): runtime.identity.OPEN_METHOD_PREFIXES. */
export const OPEN_METHOD_PREFIXES = [
  "/grpc.health.v1.Health/",
  "/grpc.reflection.v1alpha.ServerReflection/",
  "/grpc.reflection.v1.ServerReflection/",
];
export const LOOPBACK = "127.0.0.1";

/** The environment the supervisor gives every child (see runtime/identity.py). */
export interface Identity {
  service: string;
  instance: string;
  labDir: string;
  brokerAddress: string;
  supervisorAddress: string;
  supervisorPid: number;
  port: number;
  portStrict: boolean;
  language: string;
}

export function identityFromEnv(defaultService: string, env: NodeJS.ProcessEnv = process.env): Identity {
  const service = env.LAB_SERVICE || defaultService;
  return {
    service,
    instance: env.LAB_INSTANCE || `${service}-${process.pid}`,
    labDir: env.LAB_DIR || "",
    brokerAddress: env.LAB_BROKER_ADDR || "",
    supervisorAddress: env.LAB_SUPERVISOR_ADDR || "",
    supervisorPid: Number(env.LAB_SUPERVISOR_PID || 0),
    port: Number(env.LAB_PORT || 0),
    portStrict: env.LAB_PORT_STRICT === "1",
    language: env.LAB_LANGUAGE || "typescript",
  };
}

/** Broker metadata key of an instance's Connect (HTTP/1.1) address (runtime.identity.HTTP_METADATA_KEY). */
export const HTTP_METADATA_KEY = "http";

/** `READY port=N [http=M]`: the one line a server prints once it serves (runtime.identity.ready_line). */
export function readyLine(port: number, httpPort = 0): string {
  return `READY port=${port}` + (httpPort ? ` http=${httpPort}` : "");
}

/** A fresh correlation id such as `req-3f9a1c2b`. */
export function newCorrelationId(): string {
  return `req-${randomBytes(4).toString("hex")}`;
}

/** `2`, `2.5`, `-0.25`: what a learner expects to read in "Add(2,3)" (calculator/numbers.py fmt). */
export function formatNumber(x: number): string {
  return Object.is(x, -0) ? "0" : String(x);
}

const GRPC_STATUS_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/** `UNAVAILABLE` for 14: the names every client prints, in any language. */
export function statusName(code: Code | number): string {
  return GRPC_STATUS_NAMES[code] ?? `CODE_${code}`;
}

/** The lab's token: LAB_TOKEN (the supervisor gives it), else <LAB_DIR>/token; "" outside a lab. */
export function labToken(env: NodeJS.ProcessEnv = process.env): string {
  if (env[TOKEN_ENV]) return env[TOKEN_ENV] as string;
  if (!env.LAB_DIR) return "";
  try {
    return fs.readFileSync(path.join(env.LAB_DIR, TOKEN_FILE), "ascii").trim();
  } catch {
    return ""; // not readable: send none, and the service says where the token lives
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Why a call to `procedure` (`/pkg.Service/Method`) is refused (the UNAUTHENTICATED message), or
 * null if it may go on: runtime.identity.token_refusal in TypeScript. A server outside a lab (no
 * LAB_TOKEN) refuses nothing; health and reflection are open.
 */
export function tokenRefusal(
  procedure: string,
  authorization: string | null,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  const token = env[TOKEN_ENV] || "";
  if (!token || OPEN_METHOD_PREFIXES.some((p) => procedure.startsWith(p))) return null;
  const header = authorization ?? "";
  const prefix = `${AUTH_SCHEME.toLowerCase()} `;
  const presented = header.slice(0, prefix.length).toLowerCase() === prefix ? header.slice(prefix.length).trim() : "";
  // Equal-length digests, compared in constant time: a guess's match length must not show in timing.
  if (presented && timingSafeEqual(digest(presented), digest(token))) return null;
  const where = env.LAB_DIR
    ? `the token is in ${path.join(env.LAB_DIR, TOKEN_FILE)}, readable only by the lab's owner`
    : `the lab's processes have it in $${TOKEN_ENV}`;
  const send = `send '${AUTH_HEADER}: ${AUTH_SCHEME} <token>'`;
  return presented
    ? `the token sent does not match this lab's token: ${send} (${where}; a restarted lab has a new token)`
    : `this lab requires its token: ${send} (${where})`;
}

export type Op = "add" | "subtract" | "multiply" | "divide";
export const OPS: readonly Op[] = ["add", "subtract", "multiply", "divide"];
export const METHOD: Record<Op, "Add" | "Subtract" | "Multiply" | "Divide"> = {
  add: "Add",
  subtract: "Subtract",
  multiply: "Multiply",
  divide: "Divide",
};
