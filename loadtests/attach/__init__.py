"""Driving a stack someone else runs: ``brink ramp|scenario --stack native|compose``.

A workshop runs one stack (``brink up``, or the Compose lab) with Prometheus, Grafana and
Locust's web UI; a ramp or a scenario attached to it is seen on those dashboards.

- ``running_stack``: find and describe a running stack (``brink up``'s ``stack.json``, or the
  Compose file's published ports), and where its admin token comes from;
- ``live_settings``: the start-up ``BRINK_*`` settings a run needs, as live admin knobs; the
  knobs as they were, put back when the run ends;
- ``process_faults``: process faults on an attached stack (by PID natively, Docker for Compose);
- ``generator_targets``: the run's load generator as a Prometheus ``file_sd`` target;
- ``options``: ``--stack`` and ``--stack-dir``, the same for every command that drives load;
- ``session``: the above in order for one run, one run per stack at a time.

May import :mod:`loadtests.faults`, :mod:`loadtests.native` and :mod:`loadtests.ledger`;
nothing here imports the ramp or scenario runners (they import this).
"""
