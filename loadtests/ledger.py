"""A Jepsen-style ledger of orders: what the load generator was told, checked against the DB.

The generator logs every order it sends (:class:`LedgerWriter`, one JSON line per event,
flushed per line, one file per generator process): ``sent`` before the first attempt, then one
line per attempt, ``acknowledged`` (a 201, or a 200 replay of the same key, with the order's
body), ``failed`` (a definite refusal: nothing was committed) or ``unknown`` (a timeout, a lost
connection, a 5xx that may or may not have committed). After the run, :func:`check` reads the
folded ledger against the ``orders`` and ``items`` tables (:func:`read_tables`, one consistent
snapshot) and counts what a lying service would produce:

- *lost*: acknowledged, yet absent (or present with another item, quantity or order id);
- *unexpected*: a row created during the run whose key the generator never sent;
- *refused yet present*: answered ``failed``, yet committed;
- *duplicates*: more than one row for a key;
- *stock*: for every item, ``initial_stock = stock + sum(order quantities)``.

Unknown orders are neither: they are counted apart as present or absent. Every check is a pure
function over records, so it is unit-tested on synthetic ledgers and tables.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import asyncpg

Outcome = Literal["acknowledged", "failed", "unknown"]
Event = Literal["sent", "acknowledged", "failed", "unknown"]
LEDGER_GLOB = "ledger*.jsonl"

NOT_COMMITTED_503 = (
    "in_flight_limit",
    "queue_time_limit",
    "database pool exhausted",
    "db_acquire deadline",
    "db_statement deadline",
    "database unavailable: ",
)
"""Prefixes of the service's 503 details that mean "nothing was committed" (shed at
admission, no pool connection, a DB deadline inside the rolled-back transaction, the database
down before the commit). The one exception is :data:`IN_DOUBT_503`."""
IN_DOUBT_503 = "database unavailable: CommitInDoubt"
"""The service lost the connection while a COMMIT was in flight and could not find out."""


@dataclass(frozen=True)
class OrderIntent:
    """What one order asks for; the key is reused by every attempt (client retries too)."""

    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class LedgerEvent:
    """One line of the ledger."""

    key: str
    item_id: int
    quantity: int
    event: Event
    status: int = 0
    order_id: int | None = None
    t: float = 0.0


def classify(status: int, body: Any, key: str) -> tuple[Outcome, int | None]:
    """One attempt's answer → outcome and, when acknowledged, the order id.

    ``status`` 0 is a client-side failure (timeout, reset): unknown. A 2xx must carry the
    order sent (its key and an id) to count as acknowledged; anything else 2xx is unknown.
    """
    if status in (200, 201):
        if isinstance(body, dict) and body.get("idempotency_key") == key:
            order_id = body.get("id")
            if isinstance(order_id, int):
                return "acknowledged", order_id
        return "unknown", None
    if 400 <= status < 500:
        return "failed", None
    if status == 503 and isinstance(body, dict):
        detail = body.get("detail")
        not_done = isinstance(detail, str) and detail.startswith(NOT_COMMITTED_503)
        if not_done and detail != IN_DOUBT_503:
            return "failed", None
    return "unknown", None


class LedgerWriter:
    """Appends events to one JSON-lines file, each line flushed: a SIGTERM loses nothing."""

    def __init__(self, path: Path, clock: Any = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._file: IO[str] | None = path.open("a", buffering=1, encoding="utf-8")

    @classmethod
    def for_process(cls, folder: Path) -> LedgerWriter:
        """This process's own file in ``folder`` (workers never share a file)."""
        return cls(folder / f"ledger-{os.getpid()}.jsonl")

    def sent(self, order: OrderIntent) -> None:
        self._write(order, "sent", 0, None)

    def answered(self, order: OrderIntent, status: int, body: Any) -> Outcome:
        outcome, order_id = classify(status, body, order.key)
        self._write(order, outcome, status, order_id)
        return outcome

    def _write(self, order: OrderIntent, event: Event, status: int, order_id: int | None) -> None:
        if self._file is None:
            return
        # A plain dict, not dataclasses.asdict: this runs twice per order in the generator.
        record = {
            "key": order.key,
            "item_id": order.item_id,
            "quantity": order.quantity,
            "event": event,
            "status": status,
            "order_id": order_id,
            "t": round(self._clock(), 3),
        }
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def parse_lines(lines: Iterable[str]) -> tuple[list[LedgerEvent], int]:
    """Events from JSON lines; the second value counts unreadable lines (a torn last write)."""
    events, torn = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            events.append(LedgerEvent(**json.loads(line)))
        except (ValueError, TypeError):
            torn += 1
    return events, torn


def read_ledger(*folders: Path) -> tuple[list[LedgerEvent], int]:
    """Every generator process's events in ``folders`` (one per Locust run: a scenario's
    phases write one each), and the count of unreadable lines."""
    events: list[LedgerEvent] = []
    torn = 0
    for path in sorted(path for folder in folders for path in folder.glob(LEDGER_GLOB)):
        found, bad = parse_lines(path.read_text(encoding="utf-8").splitlines())
        events += found
        torn += bad
    return events, torn


@dataclass(frozen=True)
class OrderFate:
    """One order's outcome over all its attempts."""

    intent: OrderIntent
    outcome: Outcome
    order_id: int | None = None


def fold(events: Iterable[LedgerEvent]) -> dict[str, OrderFate]:
    """Per key: acknowledged if any attempt was; else unknown if any attempt was (or none
    answered: the generator stopped mid-flight); failed only when every attempt was refused.

    A refusal after an unknown attempt does not clear the doubt: the first may still commit.
    """
    fates: dict[str, OrderFate] = {}
    answers: dict[str, set[str]] = {}
    for event in events:
        intent = OrderIntent(event.key, event.item_id, event.quantity)
        seen = answers.setdefault(event.key, set())
        if event.event != "sent":
            seen.add(event.event)
        fate = fates.get(event.key)
        if event.event == "acknowledged":
            fates[event.key] = OrderFate(intent, "acknowledged", event.order_id)
        elif fate is None or fate.outcome != "acknowledged":
            outcome: Outcome = "failed" if seen == {"failed"} else "unknown"
            fates[event.key] = OrderFate(intent, outcome)
    return fates


@dataclass(frozen=True)
class OrderRow:
    id: int
    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class ItemRow:
    id: int
    stock: int
    initial_stock: int


@dataclass(frozen=True)
class LedgerVerdict:
    """What the ledger and the tables say together; ``ok`` when the service never lied."""

    sent: int
    acknowledged: int
    failed: int
    unknown: int
    lost: int
    unexpected: int
    refused_present: int
    duplicates: int
    unknown_present: int
    unknown_absent: int
    items_checked: int
    stock_violations: tuple[str, ...] = ()
    torn_lines: int = 0
    unexpected_checked: bool = True
    """False on a shared stack: rows others wrote meanwhile cannot be told from lies."""

    @property
    def ok(self) -> bool:
        lies = self.lost + self.unexpected + self.refused_present + self.duplicates
        return lies == 0 and not self.stock_violations

    @property
    def explanation(self) -> str:
        counts = (
            f"{self.sent} orders sent: {self.acknowledged} acknowledged, {self.failed} failed, "
            f"{self.unknown} unknown ({self.unknown_present} committed, "
            f"{self.unknown_absent} not)"
        )
        if self.ok:
            unexpected = (
                "none unexpected"
                if self.unexpected_checked
                else "unexpected rows not checked (a shared stack)"
            )
            return (
                f"ledger holds: {counts}; none lost, {unexpected}, no duplicates, "
                f"stock adds up for {self.items_checked} items"
            )
        problems = [
            f"{n} {what}"
            for n, what in (
                (self.lost, "lost (acknowledged, not in the table)"),
                (self.unexpected, "unexpected (in the table, never sent)"),
                (self.refused_present, "refused yet committed"),
                (self.duplicates, "keys with duplicate rows"),
                (len(self.stock_violations), "items whose stock does not add up"),
            )
            if n
        ]
        shown = "; ".join(self.stock_violations[:3])
        return f"LEDGER BROKEN: {', '.join(problems)}; {counts}" + (f"; {shown}" if shown else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "explanation": self.explanation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerVerdict:
        fields = {k: v for k, v in data.items() if k not in ("ok", "explanation")}
        fields["stock_violations"] = tuple(fields.get("stock_violations", ()))
        return cls(**fields)


def stock_violations(items: Iterable[ItemRow], all_orders: Iterable[OrderRow]) -> list[str]:
    """Items where ``initial_stock != stock + sold`` (sold over every order in the table)."""
    sold: Counter[int] = Counter()
    for row in all_orders:
        sold[row.item_id] += row.quantity
    return [
        f"item {item.id}: initial {item.initial_stock} != remaining {item.stock}"
        f" + sold {sold[item.id]}"
        for item in items
        if item.initial_stock != item.stock + sold[item.id]
    ]


def check(
    events: Iterable[LedgerEvent],
    orders: Iterable[OrderRow],
    items: Iterable[ItemRow],
    run_orders: Iterable[OrderRow] | None = None,
    torn_lines: int = 0,
) -> LedgerVerdict:
    """The verdict. ``orders`` is the whole table (stock, duplicates, presence); rows in
    ``run_orders`` (default: all of them) must each belong to a key the generator sent.
    """
    fates = fold(events)
    all_rows = list(orders)
    by_key: dict[str, list[OrderRow]] = {}
    for row in all_rows:
        by_key.setdefault(row.key, []).append(row)
    outcomes = Counter(fate.outcome for fate in fates.values())
    lost = refused_present = unknown_present = 0
    for key, fate in fates.items():
        rows = by_key.get(key, [])
        if fate.outcome == "acknowledged":
            intent = fate.intent
            matches = [
                r
                for r in rows
                if (r.id, r.item_id, r.quantity) == (fate.order_id, intent.item_id, intent.quantity)
            ]
            lost += not matches
        elif fate.outcome == "failed":
            refused_present += bool(rows)
        else:
            unknown_present += bool(rows)
    in_run = all_rows if run_orders is None else list(run_orders)
    unexpected = sum(1 for row in in_run if row.key not in fates)
    items_list = list(items)
    return LedgerVerdict(
        sent=len(fates),
        acknowledged=outcomes["acknowledged"],
        failed=outcomes["failed"],
        unknown=outcomes["unknown"],
        lost=lost,
        unexpected=unexpected,
        refused_present=refused_present,
        duplicates=sum(1 for rows in by_key.values() if len(rows) > 1),
        unknown_present=unknown_present,
        unknown_absent=outcomes["unknown"] - unknown_present,
        items_checked=len(items_list),
        stock_violations=tuple(stock_violations(items_list, all_rows)),
        torn_lines=torn_lines,
    )


_ORDERS = "SELECT id, idempotency_key::text AS key, item_id, quantity, created_at FROM orders"
_ITEMS = "SELECT id, stock, initial_stock FROM items ORDER BY id"


Window = tuple[float, float]
"""From, to: epoch seconds (wall clock) during which only the generator wrote orders."""


async def read_tables(
    dsn: str, windows: Sequence[Window] | None = None, timeout_s: float = 10.0
) -> tuple[list[OrderRow], list[ItemRow], list[OrderRow]]:
    """All orders, all items, and the orders created within one of ``windows`` (None: all),
    read in one repeatable-read snapshot so the stock sums are consistent."""
    connection = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            order_rows = await connection.fetch(_ORDERS)
            item_rows = await connection.fetch(_ITEMS)
    finally:
        await connection.close(timeout=timeout_s)
    orders, in_run = [], []
    for row in order_rows:
        order = OrderRow(row["id"], row["key"], row["item_id"], row["quantity"])
        orders.append(order)
        created = row["created_at"].timestamp()
        if windows is None or any(start <= created <= end for start, end in windows):
            in_run.append(order)
    items = [ItemRow(row["id"], row["stock"], row["initial_stock"]) for row in item_rows]
    return orders, items, in_run


def check_database(
    folders: Path | Sequence[Path],
    dsn: str,
    windows: Sequence[Window] | None = None,
    shared: bool = False,
) -> LedgerVerdict:
    """Read the ledger files in ``folders`` and the tables at ``dsn``; the verdict.

    A row created within ``windows`` (None: any row) must belong to a key the generator sent;
    outside them others may write (a capacity probe between a scenario's phases). On a
    ``shared`` stack others may write at any time: no row is held against the generator."""
    events, torn = read_ledger(*([folders] if isinstance(folders, Path) else folders))
    orders, items, in_run = asyncio.run(read_tables(dsn, () if shared else windows))
    verdict = check(events, orders, items, in_run, torn)
    return replace(verdict, unexpected_checked=False) if shared else verdict
