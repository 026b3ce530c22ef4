#!/usr/bin/env python3
"""Generate the CSV data set used by scripts/bench-import.sh.

Usage: gen_items.py OUT_DIR [--items N] [--seed S]

Writes into OUT_DIR:
  clients.csv      20,000 clients, C00001..C20000
  items_full.csv   N items (default 1,000,000, about 95 MB)
  items_stock.csv  the same items with 10% of the lines dropped and 10% of
                   the remaining lines given a new amount: a STOCK file
                   that should report N*0.09 modified and N*0.10 cleared.

Standard library only, and deterministic for a given seed and N, so runs
on different machines (and different days) import identical bytes.
"""

import argparse
import datetime
import os
import random

NB_CLIENTS = 20_000

CLIENTS_HEADER = (
    '"client_code";"client_business_name";"client_address_city";'
    '"client_address_country"\n'
)
ITEMS_HEADER = (
    '"client_code";"item_type";"item_number";"item_date_issue";'
    '"item_date_due";"item_amount_initial_inc_tax";"item_currency"\n'
)
CITIES = ["Paris", "Lyon", "Marseille", "Lille", "Nantes", "Bordeaux",
          "Toulouse", "Strasbourg", "Bruxelles", "Genève"]
COUNTRIES = ["FR", "FR", "FR", "FR", "FR", "FR", "FR", "FR", "BE", "CH"]

# Buffered writes in big chunks: the generator should take seconds, not be
# a measurable part of the benchmark's wall time.
CHUNK_LINES = 50_000


def fmt_amount(cents):
    """French-style amount: '1 234,56' (space thousands, comma decimal)."""
    return f"{cents // 100:,}".replace(",", " ") + f",{cents % 100:02d}"


def write_lines(path, header, lines):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        buf = []
        for line in lines:
            buf.append(line)
            if len(buf) >= CHUNK_LINES:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def item_line(it, cents):
    client, typ, number, issue, due = it
    return (f'"{client}";"{typ}";"{number}";"{issue}";"{due}";'
            f'"{fmt_amount(cents)}";"EUR"\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20250314)
    args = ap.parse_args()
    if args.items < 10:
        ap.error("--items must be at least 10")
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)

    write_lines(
        os.path.join(args.out_dir, "clients.csv"),
        CLIENTS_HEADER,
        (f'"C{i:05d}";"Client {i:05d} SARL";"{CITIES[i % 10]}";'
         f'"{COUNTRIES[i % 10]}"\n' for i in range(1, NB_CLIENTS + 1)),
    )

    # Two years of issue dates, formatted once: strftime per line would
    # dominate the generator's run time.
    start = datetime.date(2024, 1, 1)
    days = [(start + datetime.timedelta(d)).isoformat() for d in range(731 + 60)]
    n = args.items
    width = max(8, len(str(n)))
    items, amounts = [], []
    for i in range(n):
        d = rng.randrange(731)
        items.append((
            f"C{rng.randint(1, NB_CLIENTS):05d}",
            # A few credit notes, given positive as real files often do:
            # exercises the sign flip without producing rejected lines.
            "AVO" if rng.random() < 0.05 else "FAC",
            f"{i + 1:0{width}d}",
            days[d],
            days[d + rng.choice((30, 45, 60))],
        ))
        # Never 0,00, so every item is a distinct, non-trivial open amount.
        amounts.append(rng.randint(100, 2_500_000))

    write_lines(
        os.path.join(args.out_dir, "items_full.csv"),
        ITEMS_HEADER,
        (item_line(it, c) for it, c in zip(items, amounts)),
    )

    # Exact counts (sample, not a per-line coin toss) so the bench can check
    # the STOCK report against known numbers.
    removed = set(rng.sample(range(n), n // 10))
    kept = [i for i in range(n) if i not in removed]
    changed = set(rng.sample(kept, len(kept) // 10))
    write_lines(
        os.path.join(args.out_dir, "items_stock.csv"),
        ITEMS_HEADER,
        # A delta of at least one cent always changes the stored amount.
        (item_line(items[i], amounts[i] + rng.randint(1, 50_000)
                   if i in changed else amounts[i]) for i in kept),
    )


if __name__ == "__main__":
    main()
