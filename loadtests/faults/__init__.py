"""Faults on a schedule: knobs over the admin APIs and process faults, native or under Docker.

``spec`` parses and orders a schedule (pure), ``injector`` carries out one action, ``runner``
plays a schedule in the background. See docs/faults.md for every knob and the syntax.
"""
