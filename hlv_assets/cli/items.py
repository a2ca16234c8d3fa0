"""`hlv items`: register your own NLI items (`add`), list the registered sets (`list`), run the chain on a set
(`run`: item set -> generations -> explanation sets -> MJDs -> comparison with its HJD)."""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from hlv_assets.cli.run import Step, ensure_dagster_home, run_steps
from hlv_assets.defs import partition_sync
from hlv_assets.defs.partition_sync import sync_item_set_partitions
from hlv_assets.defs.partitions import display_partition, item_set_generation_key, judgment_key
from hlv_assets.lib import items_import as sets
from hlv_assets.lib.items_import import ItemsValidationError, check_set_name, set_rules
from hlv_assets.lib.profiles import current_profile_name
from hlv_assets.store import item_sets
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import ResultStore
from hlv_assets.store.tables import render, table_records

DEFAULT_MODEL = "smollm2-135m"
EXIT_REFUSED, EXIT_INVALID = 1, 2


def _engine():
    return get_engine()


def _instance():
    ensure_dagster_home()
    return dg.DagsterInstance.get()


def cmd_add(args) -> int:
    try:
        check_set_name(args.name)
        if args.check:
            summary = item_sets.validate_file(args.file, fmt=args.format, adapter=args.adapter,
                                              max_errors=args.max_errors, allow_extra_fields=args.allow_extra_fields)
            print(f"{args.file}: {summary.n_items} valid items ({_shape(summary)}); nothing written (--check)")
            return 0
        result = item_sets.import_item_set(_engine(), args.name, args.file, fmt=args.format, adapter=args.adapter,
                                           replace=args.replace, max_errors=args.max_errors,
                                           allow_extra_fields=args.allow_extra_fields)
    except ItemsValidationError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except item_sets.ItemSetExists as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, OSError) as exc:
        print(f"hlv items add: {exc}", file=sys.stderr)
        return EXIT_INVALID
    v, summary = result.version, result.summary
    if not result.changed:
        print(f"item set {v.name!r} version {v.version} already holds this content ({v.n_items} items): unchanged")
        return 0
    print(f"registered item set {v.name!r} version {v.version}: {v.n_items} items ({_shape(summary)})")
    if v.version > 1:
        print(f"  version {v.version - 1} is kept as history (items under '{v.name}@{v.version - 1}')")
    if not args.no_partitions:
        sync_item_set_partitions(_instance(), _engine())
    print(f"next: hlv items run {v.name}   (with `hlv ui` running, automation materializes item_set[{v.name}] "
          "and its none/human chain by itself)")
    return 0


def _shape(summary) -> str:
    parts = [f"label counts: {'yes' if summary.has_counts else 'no'}", f"hjd: {'yes' if summary.has_hjd else 'no'}",
             f"explanations: {'yes' if summary.has_explanations else 'no'}"]
    rules = set_rules(has_counts=summary.has_counts, max_label_total=summary.max_label_total,
                      has_explanations=summary.has_explanations, max_explanations=summary.max_explanations)
    return ", ".join(parts) + f"; explanation sets: {', '.join(rules)}"


def cmd_list(args) -> int:
    rows = item_sets.versions(_engine(), current_only=not args.all)
    if not rows:
        print("(no item sets: hlv items add NAME FILE)")
        return 0
    print("| name | version | current | items | counts | hjd | explanations | content sha256 | created |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v in rows:
        print(f"| {v.name} | {v.version} | {'yes' if v.current else 'no'} | {v.n_items} | "
              f"{'yes' if v.has_counts else 'no'} | {'yes' if v.has_hjd else 'no'} | "
              f"{'yes' if v.has_explanations else 'no'} | {v.content_sha256[:12]} | {v.created_at:%Y-%m-%d %H:%M} |")
    return 0


def chain_steps(version, generator: str = DEFAULT_MODEL, judge: str = DEFAULT_MODEL,
                rules: list[str] | None = None, sources: list[str] | None = None) -> list[tuple[str, object]]:
    """(asset, partition key) in order for a set: the set, one generator's answers, the explanation sets
    (`none`, `human` when the set has explanations, the generator's `rules`: default MNLI-LG-first with label
    counts, else LF-first), one judge's MJDs and their comparison rows."""
    name = version.name
    supported = sets.set_rules(has_counts=version.has_counts,
                               max_label_total=int(version.info.get("max_label_total", 0)),
                               has_explanations=version.has_explanations,
                               max_explanations=int(version.info.get("max_explanations", 0)))
    if rules is None:
        rules = ["mnli-lg-first"] if "mnli-lg-first" in supported else ["lf-first"]
    unsupported = [r for r in rules if r not in supported]
    if unsupported:
        raise ValueError(f"item set {name!r} does not support {unsupported}: it supports {supported}")
    if sources is None:
        sources = sets.builtin_sources(version.has_explanations) + [f"{generator}.{r}" for r in rules]
    steps: list[tuple[str, object]] = [("item_set", name)]
    if any("." in s for s in sources):
        steps.append(("item_set_generations", item_set_generation_key(generator, name)))
    keys = [sets.source_key(s, name) for s in sources]
    steps += [("item_set_explanations", k) for k in keys]
    for asset in ("item_set_mjd", "item_set_comparison"):
        steps += [(asset, judgment_key(judge, k)) for k in keys]
    return steps


def cli_partition(key) -> str:
    """A chain step's key in the `hlv run --partition` form: `<llm>/<other dimension>` or the plain key."""
    return display_partition(key)


def run_chain(steps, *, instance, defs=None, resources: dict | None = None, out=sys.stdout) -> bool:
    """Materialize the steps one by one (stopping at the first failure); True when all succeeded."""
    planned = [Step(asset, cli_partition(key)) for asset, key in steps]
    report = run_steps(planned, instance=instance, defs=defs, resources=resources, raise_on_error=False, out=out)
    return len(report) == len(planned) and all(ok for _, ok, _ in report)


def cmd_run(args) -> int:
    engine = _engine()
    version = item_sets.current(engine, args.name)
    if version is None:
        print(f"no item set {args.name!r}: hlv items add {args.name} FILE", file=sys.stderr)
        return EXIT_REFUSED
    rules = args.rules.split(",") if args.rules else None
    sources = args.sources.split(",") if args.sources else None
    try:
        steps = chain_steps(version, args.generator, args.judge, rules, sources)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    instance = _instance()
    partition_sync.sync_partitions(instance)
    sync_item_set_partitions(instance, engine)
    if not run_chain(steps, instance=instance):
        return EXIT_REFUSED
    records = [r for r in table_records(ResultStore(engine), "distribution-comparison",
                                        args.profile or current_profile_name())
               if r.get("item_set") == version.name]
    print(f"\ndistribution-comparison, item set {version.name}:\n")
    print(render(records, "md", short=True))
    return 0


def register(subparsers) -> None:
    """Add `hlv items add|list|run`."""
    items = subparsers.add_parser("items", help="register your own NLI items and run the chain on them")
    sub = items.add_subparsers(dest="items_command", required=True)

    p = sub.add_parser("add", help="register an item set from JSON Lines or CSV (validated whole, one transaction)",
                       description="Fields: premise, hypothesis; optional id, counts [cE,cN,cC] (or count_e/"
                       "count_n/count_c) or labels (annotator labels), hjd [pE,pN,pC], explanations "
                       "[[text, label], ...]. Every bad line and field is reported; nothing is written unless "
                       "the whole file is valid.")
    p.add_argument("name", help="item set name: lowercase letters, digits, '-'")
    p.add_argument("file", help="a .jsonl or .csv file (or give --format)")
    p.add_argument("--format", choices=["jsonl", "csv", "tsv"], help="default: from the file suffix")
    p.add_argument("--from", dest="adapter", choices=["chaosnli"],
                   help="read a known format: chaosnli = ChaosNLI v1.0 (uid, example, old_labels, label_dist)")
    p.add_argument("--replace", action="store_true",
                   help="make a new version of an existing set (the old version is kept as history)")
    p.add_argument("--check", action="store_true", help="validate only; write nothing")
    p.add_argument("--max-errors", type=int, default=50, help="errors listed (all are counted; default 50)")
    p.add_argument("--allow-extra-fields", action="store_true", help="ignore unknown fields instead of refusing")
    p.add_argument("--no-partitions", action="store_true", help="do not add the Dagster partitions now "
                   "(the llm_registry_sensor adds them within a minute)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="registered item sets")
    p.add_argument("--all", action="store_true", help="every version, replaced ones included")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run the chain on a set: generations, explanation sets, MJDs, comparison")
    p.add_argument("name")
    p.add_argument("--generator", default=DEFAULT_MODEL, help=f"generating LLM slug (default {DEFAULT_MODEL})")
    p.add_argument("--judge", default=DEFAULT_MODEL, help=f"judge LLM slug (default {DEFAULT_MODEL})")
    p.add_argument("--rules", help="comma-separated selection rules (default: mnli-lg-first, else lf-first)")
    p.add_argument("--sources", help="comma-separated sources instead (none, human, <generator>.<rule>)")
    p.add_argument("--profile", default=None, help="rows of this profile in the printed table (default: HLV_PROFILE)")
    p.set_defaults(func=cmd_run)


def main(argv: list[str] | None = None) -> int:
    """`python -m hlv_assets.cli.items ...`: the same commands without the rest of `hlv`."""
    parser = argparse.ArgumentParser(prog="hlv")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
