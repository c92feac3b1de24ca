"""Regenerate the tables of docs/performance.md from bench/results/*.json.

    python -m bench.report

Only the part between the `tables:begin` and `tables:end` markers is
rewritten; the prose around it is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT

DOCUMENT = ROOT / "docs" / "performance.md"
BEGIN = "<!-- tables:begin -->"
END = "<!-- tables:end -->"
STORES = {"postgres": "PostgreSQL", "sqlite": "SQLite"}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def measured_on(result: dict[str, Any]) -> str:
    machine = result["machine"]
    return (
        f"Measured {machine['date']} on {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_mib']:,} MiB; Python {machine['python']}, "
        f"{machine['postgres']}, SQLite {machine['sqlite']}. "
        f"Command: `{result['command']}`."
    )


def section(name: str, title: str, body: Callable[[Any], list[str]]) -> list[str]:
    """One result file's table: its title, where and how it was measured,
    then what `body` makes of its results."""
    result = load(name)
    if result is None:
        return [f"_No results in bench/results/{name}.json yet: run `make bench`._", ""]
    return [f"#### {title}", "", measured_on(result), "", *body(result["results"])]


def ingest_table(rows: Any) -> list[str]:
    lines = [
        "| connections | Headwater req/s | peer req/s | ratio | Headwater p50 | peer p50 "
        "| Headwater p99 | peer p99 | p99 ratio | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count, ours in sorted(rows["headwater"].items(), key=lambda item: int(item[0])):
        peer = rows["peer"][count]
        lines.append(
            f"| {count} | {ours['rps']:,.0f} | {peer['rps']:,.0f} "
            f"| **{ours['rps'] / peer['rps']:.2f}×** | {ours['p50_ms']:.1f} ms "
            f"| {peer['p50_ms']:.1f} ms | {ours['p99_ms']:.1f} ms | {peer['p99_ms']:.1f} ms "
            f"| {ours['p99_ms'] / peer['p99_ms']:.2f}× | {ours['non2xx']} |"
        )
    peaks = [
        f"{name} {max(r['peak_rss_mib'] for r in by.values()):.0f} MiB"
        for name, by in rows.items()
    ]
    lines += ["", f"Peak resident memory under this load: {', '.join(peaks)}.", ""]
    return lines


def rebuild_table(r: Any) -> list[str]:
    return [
        "| measure | events/s |",
        "|---|---|",
        f"| raw read of the events table (read and decode JSON) "
        f"| {r['raw_read_events_per_second']:,.0f} |",
        f"| rebuild of every projection from zero, beside the live ones "
        f"| **{r['rebuild_events_per_second']:,.0f}** "
        f"({r['rebuild_to_raw_ratio']:.2f}× the raw read) |",
        f"| live catch-up of every projection from zero "
        f"| {r['catch_up_events_per_second']:,.0f} |",
        "",
        f"Over {r['events']:,} events. `headwater events export` of the whole log: "
        f"{r['export_of_all']['seconds']:.0f} s, peak memory "
        f"{r['export_of_all']['peak_rss_mib']:.0f} MiB; of the first half of it: "
        f"{r['export_of_half']['peak_rss_mib']:.0f} MiB.",
        "",
    ]


def lag_table(r: Any) -> list[str]:
    return [
        "| maximum ingest | load (half) | submissions | lag p50 | lag p99 | lag max |",
        "|---|---|---|---|---|---|",
        f"| {r['max_rps']:,.0f} req/s | {r['rate']:,.0f} req/s | {r['submissions']:,} "
        f"| {r['lag_p50_ms']:.1f} ms | **{r['lag_p99_ms']:.1f} ms** "
        f"| {r['lag_max_ms']:.1f} ms |",
        "",
    ]


def costs_table(r: Any) -> list[str]:
    write = r["sealing_on_ingest_us_per_event"]
    read = r["sealing_on_rebuild_us_per_event"]
    chain = r["chain_on_ingest_us_per_event"]

    def row(what: str, on: float, off: float) -> str:
        return f"| {what} | {on:.1f} µs | {off:.1f} µs | {on - off:+.1f} µs |"

    return [
        "| measure | with | without | difference |",
        "|---|---|---|---|",
        row("sealing on ingest (encode, CPU)", write["sealed"], write["open"]),
        row("sealing on rebuild (decode, CPU)", read["sealed"], read["open"]),
        row(
            f"chain on ingest (insert, {r['insert_batch']} events a transaction, clock)",
            chain["chained"],
            chain["unchained"],
        ),
        "| chain on rebuild | none: projections never read the links | | |",
        "",
        f"Over {r['events']:,} events from the real write path; the insert over "
        f"{r['insert_sample']:,} of them.",
        "",
    ]


def profile_table(r: Any) -> list[str]:
    ours, peer = r["cpu"]["headwater"], r["cpu"]["peer"]
    lines = [
        f"CPU per request at {r['connections']} connections, by process "
        f"(Headwater {ours['rps']:,.0f} req/s, peer {peer['rps']:,.0f} req/s):",
        "",
        "| process | Headwater | peer |",
        "|---|---|---|",
    ]
    for name, value in ours["cpu_ms_per_request"].items():
        other = peer["cpu_ms_per_request"].get(name, 0.0)
        label = "whole machine" if name == "machine" else name
        lines.append(f"| {label} | {value:.2f} ms | {other:.2f} ms |")
    lines += [
        "",
        f"The server's interpreter lock was held {r['interpreter_busy_percent']:.0f}% "
        f"of the time ({r['samples']:,} samples at {r['rps_while_sampled']:,.0f} "
        "req/s while sampled). Where the held time went, by the code "
        "running:",
        "",
        "| own time in | share |",
        "|---|---|",
    ]
    lines += [
        f"| {name} | {percent:.1f}% |"
        for name, percent in r["own_time_by_layer_percent"].items()
    ]
    lines += ["", "| under (callees included) | share |", "|---|---|"]
    lines += [
        f"| `{name}` | {percent:.1f}% |"
        for name, percent in r["inclusive_percent"].items()
    ]
    lines += ["", "| function (own time) | share |", "|---|---|"]
    lines += [
        f"| `{row['frame'].replace('|', '/')}` | {row['percent']:.1f}% |"
        for row in r["top_functions_own_percent"][:12]
    ]
    return [*lines, ""]


def tables() -> str:
    lines: list[str] = []
    for kind, title, body in (
        ("ingest", "Ingest", ingest_table),
        ("rebuild", "Rebuild", rebuild_table),
        ("lag", "Live projection lag", lag_table),
    ):
        for store, label in STORES.items():
            lines += section(f"{kind}-{store}", f"{title} on {label}", body)
    lines += section(
        "costs-postgres",
        "What sealing and the chain cost, per event, on PostgreSQL",
        costs_table,
    )
    lines += section(
        "profile-postgres", "Where the time goes on PostgreSQL", profile_table
    )
    return "\n".join(lines)


def main() -> None:
    text = DOCUMENT.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOCUMENT.write_text(f"{head}{BEGIN}\n{tables()}\n{END}{tail}")
    print(f"rewrote the tables of {DOCUMENT.relative_to(Path.cwd())}")


if __name__ == "__main__":
    main()
