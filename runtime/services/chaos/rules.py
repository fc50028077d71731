"""What the chaos service accepts: one check per fault, with a message a learner understands.

problem = config_problem(config)      # "" when the FaultConfig is fine
"""

from __future__ import annotations

import math

from runtime.agent.faults import MAX_CPU_THREADS, MAX_DELAY_MS, MAX_MEMORY_MB, kind_name
from runtime.v1 import chaos_pb2

MAX_ACTIVE_FAULTS = 32
MAX_DURATION_S = 24 * 3600
TYPES_TEXT = "CRASH, DELAY, PACKET_LOSS, CPU_HOG, MEMORY_LEAK or ERROR_INJECT"


def config_problem(config: chaos_pb2.FaultConfig) -> str:
    """What is wrong with ``config`` ("" when nothing is); target existence is checked elsewhere."""
    if not config.target_service:
        return "target_service is empty: name the lab service to hit, e.g. 'calculator'"
    if not config.HasField("type"):
        return f"type is not set: choose one of {TYPES_TEXT} (an unset type is never taken as CRASH)"
    if config.type not in chaos_pb2.FaultType.values():
        return f"type {config.type} is unknown: choose one of {TYPES_TEXT}"
    if config.duration_seconds < 0:
        return f"duration_seconds is {config.duration_seconds}: use 0 (until cleared) or a positive number"
    if config.duration_seconds > MAX_DURATION_S:
        return f"duration_seconds {config.duration_seconds} is above the cap of {MAX_DURATION_S} s"
    p = config.params
    t = config.type
    if t == chaos_pb2.DELAY and not 1 <= p.delay_ms <= MAX_DELAY_MS:
        return f"delay_ms is {p.delay_ms}: a DELAY needs 1 to {MAX_DELAY_MS} ms (MAX_DELAY_MS)"
    if t == chaos_pb2.PACKET_LOSS and not (
        math.isfinite(p.packet_loss_pct) and 0 <= p.packet_loss_pct <= 100
    ):
        return f"packet_loss_pct is {p.packet_loss_pct:g}: it is a percentage, 0 to 100"
    if t == chaos_pb2.ERROR_INJECT and not (math.isfinite(p.error_rate) and 0 <= p.error_rate <= 1):
        return f"error_rate is {p.error_rate:g}: it is a probability, 0 to 1 (0.5 = every second call)"
    if t == chaos_pb2.CPU_HOG and not 1 <= p.cpu_threads <= MAX_CPU_THREADS:
        return f"cpu_threads is {p.cpu_threads}: a CPU_HOG needs 1 to {MAX_CPU_THREADS} busy threads (MAX_CPU_THREADS)"
    if t == chaos_pb2.MEMORY_LEAK and not 1 <= p.memory_mb <= MAX_MEMORY_MB:
        return f"memory_mb is {p.memory_mb}: a MEMORY_LEAK needs 1 to {MAX_MEMORY_MB} MiB (MAX_MEMORY_MB)"
    return ""


def describe(config: chaos_pb2.FaultConfig) -> str:
    """``DELAY 500 ms on calculator (every instance) for 10 s``."""
    p = config.params
    what = {
        chaos_pb2.CRASH: "CRASH",
        chaos_pb2.DELAY: f"DELAY {p.delay_ms} ms",
        chaos_pb2.PACKET_LOSS: f"PACKET_LOSS {p.packet_loss_pct:g} %",
        chaos_pb2.CPU_HOG: f"CPU_HOG {p.cpu_threads} threads",
        chaos_pb2.MEMORY_LEAK: f"MEMORY_LEAK {p.memory_mb} MiB",
        chaos_pb2.ERROR_INJECT: f"ERROR_INJECT rate {p.error_rate:g}",
    }.get(config.type, kind_name(config.type))
    target = config.target_instance or f"{config.target_service} (every instance)"
    until = f" for {config.duration_seconds} s" if config.duration_seconds else " until cleared"
    return f"{what} on {target}{'' if config.type == chaos_pb2.CRASH else until}"
