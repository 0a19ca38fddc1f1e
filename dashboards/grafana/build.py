"""Write brink's Grafana dashboards (defined in boards/) as plain, pretty JSON.

    .venv/bin/python dashboards/grafana/build.py           # rewrite dashboards/*.json
    .venv/bin/python dashboards/grafana/build.py --check   # exit 1 when the JSON is stale

Edit boards/, never the JSON: tests/unit/test_dashboards.py fails when the two disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from boards import dashboards

OUT_DIR = Path(__file__).resolve().parent / "dashboards"


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as it is on disk."""
    return {
        f"{board['uid']}.json": json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        for board in dashboards()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write brink's Grafana dashboards as JSON.")
    parser.add_argument("--check", action="store_true", help="exit 1 when the JSON is stale")
    args = parser.parse_args(argv)
    rendered = render()
    stale = sorted(
        name
        for name, content in rendered.items()
        if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text("utf-8") != content
    )
    orphans = sorted(p.name for p in OUT_DIR.glob("*.json") if p.name not in rendered)
    if args.check:
        for name in stale:
            print(f"stale: {name} (run dashboards/grafana/build.py)", file=sys.stderr)
        for name in orphans:
            print(f"not built by boards/: {name}", file=sys.stderr)
        return 1 if stale or orphans else 0
    OUT_DIR.mkdir(exist_ok=True)
    for name in stale:
        (OUT_DIR / name).write_text(rendered[name], encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")
    for name in orphans:
        (OUT_DIR / name).unlink()
        print(f"removed {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
