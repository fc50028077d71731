// What every TypeScript lab process shares: the env contract (runtime/identity.py), JSON log
// lines on stdout, the protos loaded at run time from <repo>/proto, and gRPC status names.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { ProtoGrpcType as CalculatorProto } from "./generated/calculator";
import type { ProtoGrpcType as BrokerProto } from "./generated/broker";

/** The proto tree of the repository: dist/ (or src/) -> calculator/node -> repo root. */
export const PROTO_ROOT = path.resolve(__dirname, "..", "..", "..", "proto");
export const CALCULATOR_SERVICE = "calculator.v1.CalculatorService";
export const CORRELATION_HEADER = "x-correlation-id";
// Access (runtime/identity.py "Access"): every RPC but health and reflection carries the lab's token.
export const AUTH_HEADER = "authorization";
export const TOKEN_ENV = "LAB_TOKEN";
export const TOKEN_FILE = "token";

/** The environment the supervisor gives every child (see runtime/identity.py). */
export interface Identity {
  service: string;
  instance: string;
  brokerAddress: string;
  port: number;
  portStrict: boolean;
  supervisorPid: number;
}

export function identityFromEnv(defaultService: string, env: NodeJS.ProcessEnv = process.env): Identity {
  const service = env.LAB_SERVICE || defaultService;
  return {
    service,
    instance: env.LAB_INSTANCE || `${service}-${process.pid}`,
    brokerAddress: env.LAB_BROKER_ADDR || "",
    port: Number(env.LAB_PORT || 0),
    portStrict: env.LAB_PORT_STRICT === "1",
    supervisorPid: Number(env.LAB_SUPERVISOR_PID || 0),
  };
}

export type Level = "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "FATAL";

/** Writes one JSON object per line on stdout (stdout to a pipe is synchronous on Linux). */
export class JsonLog {
  constructor(private readonly who: Identity) {}

  write(level: Level, message: string, correlationId: string, extra: Record<string, unknown> = {}): void {
    const entry = {
      ts: Date.now(),
      level,
      message,
      correlation_id: correlationId,
      service: this.who.service,
      instance: this.who.instance,
      ...extra,
    };
    process.stdout.write(JSON.stringify(entry) + "\n");
  }
}

/** A fresh correlation id such as `req-3f9a1c2b`. */
export function newCorrelationId(): string {
  return `req-${randomBytes(4).toString("hex")}`;
}

/** `2`, `2.5`, `-0.25`: what a learner expects to read in "Add(2,3)". */
export function formatNumber(x: number): string {
  return String(x);
}

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export function calculatorDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync("calculator/v1/calculator.proto", LOADER_OPTIONS);
}

export function loadCalculator(def: protoLoader.PackageDefinition = calculatorDefinition()): CalculatorProto {
  return grpc.loadPackageDefinition(def) as unknown as CalculatorProto;
}

export function loadBroker(): BrokerProto {
  const def = protoLoader.loadSync("runtime/v1/broker.proto", LOADER_OPTIONS);
  return grpc.loadPackageDefinition(def) as unknown as BrokerProto;
}

/** `UNAVAILABLE` for 14: the names every client prints, in any language. */
export function statusName(code: number): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

export function deadlineIn(seconds: number): Date {
  return new Date(Date.now() + seconds * 1000);
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

let cachedToken: string | undefined;

/** Metadata carrying `authorization: Bearer <token>` (empty outside a lab). */
export function authMetadata(md: grpc.Metadata = new grpc.Metadata()): grpc.Metadata {
  cachedToken ??= labToken();
  if (cachedToken) md.set(AUTH_HEADER, `Bearer ${cachedToken}`);
  return md;
}

/** What every call sends: the lab's token and the correlation id. */
export function correlationMetadata(correlationId: string): grpc.Metadata {
  const md = authMetadata();
  md.set(CORRELATION_HEADER, correlationId);
  return md;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * The server's token check (runtime.identity.token_refusal in TypeScript): null when the call carries the
 * lab's token (or the server runs outside a lab and has none), else the UNAUTHENTICATED answer.
 */
export function tokenRefusal(metadata: grpc.Metadata, env: NodeJS.ProcessEnv = process.env): grpc.StatusObject | null {
  const token = env[TOKEN_ENV] || "";
  if (!token) return null;
  const values = metadata.get(AUTH_HEADER);
  const header = values.length > 0 ? String(values[0]) : "";
  const presented = header.toLowerCase().startsWith("bearer ") ? header.slice(7).trim() : "";
  // Equal-length digests, compared in constant time: a guess's match length must not show in timing.
  if (presented && timingSafeEqual(digest(presented), digest(token))) return null;
  const where = env.LAB_DIR
    ? `the token is in ${path.join(env.LAB_DIR, TOKEN_FILE)}, readable only by the lab's owner`
    : `the lab's processes have it in $${TOKEN_ENV}`;
  const details = presented
    ? `the token sent does not match this lab's token: send 'authorization: Bearer <token>' (${where}; a restarted lab has a new token)`
    : `this lab requires its token: send 'authorization: Bearer <token>' (${where})`;
  return { code: grpc.status.UNAUTHENTICATED, details, metadata: new grpc.Metadata() };
}

export type Op = "add" | "subtract" | "multiply" | "divide";
export const OPS: readonly Op[] = ["add", "subtract", "multiply", "divide"];
export const METHOD: Record<Op, "Add" | "Subtract" | "Multiply" | "Divide"> = {
  add: "Add",
  subtract: "Subtract",
  multiply: "Multiply",
  divide: "Divide",
};
