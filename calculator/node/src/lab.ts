// What every TypeScript lab process shares: the env contract (runtime/identity.py), JSON log
// lines on stdout, the protos loaded at run time from <repo>/proto, and gRPC status names.
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { ProtoGrpcType as CalculatorProto } from "./generated/calculator";
import type { ProtoGrpcType as BrokerProto } from "./generated/broker";

/** The proto tree of the repository: dist/ (or src/) -> calculator/node -> repo root. */
export const PROTO_ROOT = path.resolve(__dirname, "..", "..", "..", "proto");
export const CALCULATOR_SERVICE = "calculator.v1.CalculatorService";
export const CORRELATION_HEADER = "x-correlation-id";

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

export function correlationMetadata(correlationId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(CORRELATION_HEADER, correlationId);
  return md;
}

export type Op = "add" | "subtract" | "multiply" | "divide";
export const OPS: readonly Op[] = ["add", "subtract", "multiply", "divide"];
export const METHOD: Record<Op, "Add" | "Subtract" | "Multiply" | "Divide"> = {
  add: "Add",
  subtract: "Subtract",
  multiply: "Multiply",
  divide: "Divide",
};
