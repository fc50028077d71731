"""CPU each Python lab service spends until its READY line: imports vs run-time start-up.

    .venv/bin/python benchmarks/profile_startup.py [--runs 3] [--profile] [--top 25] [--only broker]

Starts the default lab (lab.yaml, fresh lab dir) with Lab.up() and a ``sitecustomize`` on the
children's PYTHONPATH that, in every Python service process (``LAB_INSTANCE`` set), reads the
process's CPU seconds (getrusage: all threads) three times:
- at interpreter start (``interp``),
- when the service's ``__main__`` calls ``asyncio.run`` or ``asyncio.Runner.run`` (imports
  done: ``imports``; a module imported later, inside ``main()``, counts as run-time),
- when it prints its READY line (``run``: from there to READY; ``lazy``: modules imported in it).

``--warm`` first runs the lab once to list the modules each instance imports after asyncio.run
(runtime.connect, uvicorn, ... in the services that serve Connect), and the measured runs import
them before the mark, as a fork server's parent would: ``run`` is then the start-up work alone.
Prints a table per run and the mean per service over the runs, with the machine's load average:
``ready`` is the process's CPU at READY (interp + imports + run), ``at_up`` its CPU right after
Lab.up() returned (what /tmp/cpu_at_ready.py reads: READY plus the work after it until the whole
lab is up, e.g. the broker answering everyone's registration); ``start at`` / ``READY at``: wall seconds
from the Lab.up() call to the process's start (or fork) / its READY line (SUM row: the first
start, the last READY).

``--profile`` also runs cProfile (main thread CPU time) from asyncio.run to READY (this inflates the
CPU figures: take them from a run without it) and prints, per service (``--only`` to pick some),
the ``--top`` functions by cumulative time (``--wall``: wall-clock time, where it waits; on a
busy machine also where it lost its core); ``.prof`` files stay in the printed folder (``--keep``:
the other reports too; without either, the folder is removed at the end).

A service forked by the daemon's fork server (``forked`` 1) counts from the fork: ``interp`` is 0
and ``imports`` is what its ``__main__`` still imports after the fork, up to ``asyncio.run``.

Only what the processes report is trusted; no service code is changed for this. The table lists
the instances that reported (a non-Python service, e.g. calculator-ts, never does).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.lab import Lab  # noqa: E402

CONFIG = ROOT / "lab.yaml"
ENV_OUT = "LAB_STARTUP_PROFILE_OUT"
ENV_CPROFILE = "LAB_STARTUP_CPROFILE"
ENV_PREIMPORT = "LAB_STARTUP_PREIMPORT"

SITECUSTOMIZE = (
    r"""
import os as _os

if _os.environ.get("@OUT@"):
    import resource as _resource

    def _cpu():
        u = _resource.getrusage(_resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    import sys as _sys
    import time as _time

    _state = {"interp": _cpu(), "forked": False, "start_at": _time.time()}
    # A child forked from this process (the daemon's fork server) starts its CPU count at zero.
    def _forked():
        _state.update(interp=0.0, forked=True, start_at=_time.time(), at_fork=list(_sys.modules))

    _os.register_at_fork(after_in_child=_forked)

    import asyncio as _asyncio
    import builtins as _builtins
    import json as _json
    _prof = None
    if _os.environ.get("@CPROFILE@"):
        import cProfile as _cProfile

        # CPU time of the main thread, not wall time: on a busy machine a wall-clock profile
        # charges whatever function was running when the process lost its core.
        _prof = _cProfile.Profile(_time.perf_counter if _os.environ["@CPROFILE@"] == "wall" else _time.thread_time)
    _orig_run = _asyncio.run
    _orig_runner_run = _asyncio.Runner.run
    _orig_print = _builtins.print

    def _imports_done():
        if "imports" not in _state and _os.environ.get("LAB_INSTANCE"):
            _preimport = _os.environ.get("@PREIMPORT@")
            if _preimport:
                import importlib as _importlib

                with open(_preimport) as fh:
                    _names = _json.load(fh).get(_os.environ["LAB_INSTANCE"], [])
                for _name in _names:
                    try:
                        _importlib.import_module(_name)
                    except Exception:
                        pass
            _state["imports"] = _cpu()
            _state["run_at"] = _time.time()
            _state["modules"] = sorted(_sys.modules)
            if "at_fork" in _state:  # what the child imported between the fork and asyncio.run
                _state["fork_imports"] = sorted(set(_state["modules"]) - set(_state.pop("at_fork")))
            if _prof is not None:
                _prof.enable()

    def _run(main, *args, **kwargs):
        _imports_done()
        return _orig_run(main, *args, **kwargs)

    def _runner_run(self, coro, *args, **kwargs):
        _imports_done()
        return _orig_runner_run(self, coro, *args, **kwargs)

    def _print(*args, **kwargs):
        if (
            args
            and isinstance(args[0], str)
            and args[0].startswith("READY")
            and "imports" in _state
            and "ready" not in _state
        ):
            _state["ready"] = _cpu()
            _state["ready_at"] = _time.time()
            _state["lazy"] = sorted(set(_sys.modules) - set(_state.pop("modules", ())))
            _state["runtime"] = getattr(_sys.modules.get("runtime"), "__file__", "")
            _builtins.print = _orig_print
            name = _os.environ["LAB_INSTANCE"]
            out = _os.environ["@OUT@"]
            if _prof is not None:
                _prof.disable()
                _prof.dump_stats(_os.path.join(out, name + ".prof"))
            with open(_os.path.join(out, name + ".json"), "w") as fh:
                _json.dump(_state, fh)
        return _orig_print(*args, **kwargs)

    _asyncio.run = _run
    _asyncio.Runner.run = _runner_run
    _builtins.print = _print
""".replace("@OUT@", ENV_OUT)
    .replace("@CPROFILE@", ENV_CPROFILE)
    .replace("@PREIMPORT@", ENV_PREIMPORT)
)


def one_run(
    base: str, profile: str = "", preimport: str = ""
) -> tuple[float, dict[str, dict[str, float]], str]:
    out = tempfile.mkdtemp(prefix="run-", dir=base)
    hook = tempfile.mkdtemp(prefix="hook-", dir=base)
    Path(hook, "sitecustomize.py").write_text(SITECUSTOMIZE)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", ENV_OUT, ENV_CPROFILE, ENV_PREIMPORT)}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (hook, saved["PYTHONPATH"]) if p)
    os.environ[ENV_OUT] = out
    if profile:
        os.environ[ENV_CPROFILE] = profile
    if preimport:
        os.environ[ENV_PREIMPORT] = preimport
    try:
        with tempfile.TemporaryDirectory() as lab_dir:
            t0 = time.perf_counter()
            wall0 = time.time()
            lab = Lab.up(lab_dir=lab_dir, config=str(CONFIG), linger_s=5)
            up = time.perf_counter() - t0
            at_up = cpu_at_up(lab)
            lab.down()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    figures = {}
    lazy = {}
    for f in sorted(Path(out).glob("*.json")):
        s = json.loads(f.read_text())
        if not s["runtime"].startswith(str(ROOT)):
            print(f"  note: {f.stem} ran {s['runtime']}, not this checkout's ({ROOT})")
        figures[f.stem] = {
            "interp": s["interp"],
            "imports": s["imports"] - s["interp"],
            "run": s["ready"] - s["imports"],
            "total": s["ready"],
            "lazy": len(s["lazy"]),
            "forked": float(s["forked"]),
            "ready_at": s["ready_at"] - wall0,
            "start_at": s["start_at"] - wall0,
            "at_up": at_up.get(f.stem, float("nan")),
        }
        lazy[f.stem] = s["lazy"]
    Path(out, "lazy.json").write_text(json.dumps(lazy))
    return up, figures, out


def cpu_at_up(lab: Lab) -> dict[str, float]:
    """CPU seconds of each instance's process right after Lab.up() returned."""
    st = lab.status()
    pids = {int(r.pid): r.instance for r in st[st.pid.notna()].itertuples()}
    out = {}
    for pid, name in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[name] = t.user + t.system
    return out


def table(figures: dict[str, dict[str, float]]) -> None:
    keys = ("interp", "imports", "run", "total", "at_up", "lazy", "forked", "start_at", "ready_at")
    print(
        f"  {'instance':18s} {'interp':>7s} {'imports':>8s} {'run':>7s} {'ready':>7s} {'at_up':>7s}"
        f" {'lazy':>5s} {'forked':>6s} {'start at':>8s} {'READY at':>8s}"
    )
    total = {k: sum(f[k] for f in figures.values()) for k in keys}
    total["start_at"] = min((f["start_at"] for f in figures.values()), default=0.0)  # the first one
    total["ready_at"] = max((f["ready_at"] for f in figures.values()), default=0.0)  # the last one
    rows = [*figures.items(), ("SUM", total)]
    for name, f in rows:
        print(
            f"  {name:18s} {f['interp']:7.3f} {f['imports']:8.3f} {f['run']:7.3f} {f['total']:7.3f}"
            f" {f['at_up']:7.3f} {f['lazy']:5.0f} {f['forked']:6.0f} {f['start_at']:8.3f} {f['ready_at']:8.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile asyncio.run -> READY (inflates CPU)")
    p.add_argument("--wall", action="store_true", help="with --profile: wall-clock time, not thread CPU time")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--only", action="append", default=[], help="instance ids to print profiles of")
    p.add_argument(
        "--warm",
        action="store_true",
        help="first a run that lists the modules each service imports after asyncio.run; the measured "
        "runs import those before it (as a fork server's parent would have): 'run' is then start-up work only",
    )
    p.add_argument("--keep", action="store_true", help="keep the per-process reports (kept with --profile)")
    args = p.parse_args()
    base = tempfile.mkdtemp(prefix="startup-profile-")
    try:
        measure(args, base)
    finally:
        if args.keep or args.profile:
            print(f"reports kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def measure(args: argparse.Namespace, base: str) -> None:
    preimport = ""
    if args.warm:
        _, _, out = one_run(base)
        preimport = str(Path(out, "lazy.json"))
        print(f"warm: modules imported before asyncio.run from {preimport}")
    runs: list[dict[str, dict[str, float]]] = []
    for i in range(args.runs):
        load = os.getloadavg()[0]
        up, figures, out = one_run(base, ("wall" if args.wall else "cpu") if args.profile else "", preimport)
        runs.append(figures)
        print(f"run {i + 1}: Lab.up {up:.2f} s, load {load:.2f}")
        table(figures)
        if args.profile:
            for name in figures:
                if args.only and name not in args.only:
                    continue
                path = Path(out, name + ".prof")
                if path.exists():
                    print(f"--- {name}: asyncio.run -> READY, main thread, by cumulative time")
                    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(args.top)
    if len(runs) > 1:
        names = sorted(set().union(*runs))
        mean = {n: {k: statistics.mean(r[n][k] for r in runs if n in r) for k in runs[0][n]} for n in names}
        print(f"mean over {len(runs)} runs (CPU seconds, all threads of each process):")
        table(mean)


if __name__ == "__main__":
    main()
