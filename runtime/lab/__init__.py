"""The notebook API: :class:`Lab`, a synchronous handle on one running lab, and its parts.

    from runtime.lab import Lab
    lab = Lab.up()

``Lab`` owns the processes (status, kill, restart, scale, events, jobs); every service's API is a
*part*, an object with its own methods, built over a small :class:`connection.Connection`
(channels to services, not the whole Lab):

=============  ===================================================  ====================
part           methods                                              module
=============  ===================================================  ====================
lab.health     ``lab.health()``, .history(), .check(), .watch()     ``health.py``
lab.logs       ``lab.logs(...)``, .tail(), .trace(), .export()      ``logs.py``
lab.load       .start(), .tests()                                   ``load.py``
lab.chaos      .inject(), .faults(), .clear()                       ``chaos.py``
lab.config     .get(), .set(), .values(), .watch()                  ``config.py``
lab.state      .get(), .set(), .cas(), .lock(), .unlock(), .watch(),  ``state.py``
               .run_workers()
=============  ===================================================  ====================

Only the calls a chapter is built around keep a flat alias on ``Lab``: ``lab.start_load(...)``
(``lab.load.start``) and ``lab.inject(...)`` (``lab.chaos.inject``); ``lab.health()`` and
``lab.logs(...)`` work because calling those parts gives their table.

The rest of the package: ``connection`` (channels + the one gRPC error mapping), ``names``
(instance and signal names a learner may use), ``jobs`` (``lab.run_job``), ``frames`` (protos
to DataFrames), ``stream_watch`` and ``events`` (background watches), ``startup`` (one handle
per lab dir, when a lab is ready, cleanup after a failed up), ``launcher``, ``lease`` and
``project`` (finding, starting and holding the daemon), ``setup_check`` (notebook 00).

The calculator is the demo that runs *on* the runtime, so nothing here imports it. Its helpers
(a client, the polyglot clients, the chaos panel's latency probe) are in ``calculator.lab``, and
a notebook imports them explicitly, where the learner sees the boundary:

    from calculator.lab import CalculatorLab
    calc_lab = CalculatorLab(lab)
    calc_lab.run_client("rust", "add", 2, 3)
"""

from __future__ import annotations

from runtime.lab.lab import Lab

__all__ = ["Lab"]
