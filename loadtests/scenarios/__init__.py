"""``brink scenario``: short, named stories told with real load, each ending in a verdict.

The framework is in :mod:`~loadtests.scenarios.base` (what a scenario is and returns) and
:mod:`~loadtests.scenarios.context` (the stack as a scenario works with it), the list in
:mod:`~loadtests.scenarios.registry`; nothing is imported here so that listing the scenarios
stays cheap.
"""
