"""The feedback-loop link ``brink up`` prints: every graph is a recording rule, all in one link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from loadtests.native.prometheus import FEEDBACK_LOOP, RULES_DIR, graph_link


def _recorded() -> set[str]:
    names = set()
    for path in Path(RULES_DIR).glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def test_every_graph_of_the_feedback_loop_is_a_recording_rule() -> None:
    assert set(FEEDBACK_LOOP) <= _recorded()


def test_the_link_holds_one_graph_per_expression_in_order() -> None:
    link = graph_link("http://127.0.0.1:9090/classic/graph", ("up", 'rate(x{a="b"}[1m])'))
    parts = urlsplit(link)
    assert parts.path == "/classic/graph"
    query = parse_qs(parts.query)
    assert query["g0.expr"] == ["up"]
    assert query["g1.expr"] == ['rate(x{a="b"}[1m])']
    assert query["g1.range_input"] == ["15m"]
