// Follow one config namespace live (runtime/agent/config_watch.py): find the config service through
// the broker, register the namespace's schema on every connect (so bad values are refused before
// they are stored), WatchConfig(namespace) (current values first, then every change), reconnect with
// backoff. Every value received is checked against the schema too: a bad one (stored before the
// schema existed) is not applied; the key keeps its last good value and the log says why, once.
import { ConnectError, createClient, Code, type Client } from "@connectrpc/connect";
import { ConfigService, type ConfigSchema, type ConfigValue } from "../gen/runtime/v1/config_pb";
import type { JsonLog } from "../jsonlog";
import { statusName } from "../lab";
import { grpcTransport } from "../transport";
import { check, quote, SchemaViolation, specOf } from "./config-schema";
import { findOrWait } from "./lookup";
import { sleep } from "./wakeup";

export const CONFIG_GRPC_SERVICE = ConfigService.typeName;
const RECONNECT_START_MS = 100;
const RECONNECT_MAX_MS = 2000;
const REGISTER_TIMEOUT_MS = 5000;
const CONFIG_WAIT_MS = 30_000;

export class ConfigWatch {
  readonly values = new Map<string, ConfigValue>(); // the last good value of each key
  readonly refused = new Map<string, ConfigValue>(); // the newest bad value of each key
  connected = false;
  reconnects = 0;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    readonly namespace: string,
    private readonly onChange: (key: string, value: ConfigValue) => void,
    private readonly brokerAddress: string,
    readonly schema: ConfigSchema | undefined,
    private readonly log: JsonLog,
  ) {}

  /** Start following (no-op without a broker address). */
  start(): void {
    if (!this.loop && this.brokerAddress) this.loop = this.follow();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async follow(): Promise<void> {
    const signal = this.stopping.signal;
    let backoff = RECONNECT_START_MS;
    while (!signal.aborted) {
      try {
        const address = await findOrWait(this.brokerAddress, CONFIG_GRPC_SERVICE, CONFIG_WAIT_MS, signal);
        if (address) {
          const config = createClient(ConfigService, grpcTransport(address));
          await this.registerSchema(config, signal);
          for await (const value of config.watchConfig({ namespace: this.namespace }, { signal })) {
            this.connected = true;
            backoff = RECONNECT_START_MS;
            this.apply(value);
          }
        }
      } catch (err) {
        const e = ConnectError.from(err);
        if (!signal.aborted) this.log.debug(`config watch of ${this.namespace}: ${statusName(e.code)} ${e.rawMessage}; retrying`);
      } finally {
        this.connected = false;
      }
      this.reconnects += 1;
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    }
  }

  private async registerSchema(config: Client<typeof ConfigService>, signal: AbortSignal): Promise<void> {
    // On every connect: a config service that restarted from an empty lab dir learns it again.
    if (!this.schema) return;
    try {
      const ack = await config.registerSchema(this.schema, { timeoutMs: REGISTER_TIMEOUT_MS, signal });
      if (ack.invalid.length > 0) this.log.warn(`config ${ack.message}`);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unavailable || e.code === Code.DeadlineExceeded || signal.aborted) throw err;
      // UNIMPLEMENTED or a schema it refuses: values are still checked here, on receipt.
      this.log.warn(`config schema of ${this.namespace} not registered: ${e.rawMessage}`);
    }
  }

  private apply(value: ConfigValue): void {
    const old = this.values.get(value.key);
    if (old && old.version >= value.version && old.value === value.value) return; // a reconnect's snapshot
    const spec = specOf(this.schema, value.key);
    if (spec) {
      try {
        check(spec, value.value, this.namespace);
      } catch (err) {
        if (!(err instanceof SchemaViolation)) throw err;
        this.refuse(value, old, spec.defaultValue, err.message);
        return;
      }
    }
    this.refused.delete(value.key);
    this.values.set(value.key, value);
    try {
      this.onChange(value.key, value);
    } catch (err) {
      this.log.error(`config change callback failed for ${this.namespace}/${value.key}: ${(err as Error).stack ?? err}`);
    }
  }

  private refuse(value: ConfigValue, old: ConfigValue | undefined, defaultValue: string, why: string): void {
    const seen = this.refused.get(value.key);
    this.refused.set(value.key, value);
    if (seen && seen.version === value.version) return; // said once already
    const kept = old
      ? `keeping the last good value ${quote(old.value)} (version ${old.version})`
      : defaultValue
        ? `keeping the default ${quote(defaultValue)}`
        : "keeping the default";
    this.log.warn(`config version ${value.version} refused: ${why}; ${kept}`, { config_key: value.key });
  }
}
