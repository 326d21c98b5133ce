"""The webhook's rule on many generated requests: "any bytes a client sends get a 2xx, or a
4xx with a reason, and a 4xx stores nothing" (issue 13).

    .venv/bin/python -m bench.webhook_fuzz                      # 1,000 new examples per property
    .venv/bin/python -m bench.webhook_fuzz --examples 5000 --database sqlite
    .venv/bin/python -m bench.webhook_fuzz --seed 42            # replay one run

It runs tests/intake/test_webhook_properties.py, whose CI run is a fixed sample of 25
examples, with a profile of your size that explores new examples each run (unless a
seed is given). The exit status is pytest's: 0 if every example kept the rule; a failure
prints the smallest request that broke it and how to reproduce it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = ROOT / "tests" / "intake" / "test_webhook_properties.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_fuzz", description=__doc__)
    parser.add_argument(
        "--examples", type=int, default=1000, help="per property and database (default 1000)"
    )
    parser.add_argument("--seed", type=int, help="replay the run of this seed")
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql"], help="only this one (default: both)"
    )
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be >= 1")
    # Registered before pytest starts, so that its --hypothesis-profile can load it.
    settings.register_profile(
        "inloop-long",
        max_examples=args.examples,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    pytest_args = [
        "-q",
        str(PROPERTIES),
        "--hypothesis-profile=inloop-long",
        "--hypothesis-show-statistics",
        # hypothesis is imported above, before pytest could rewrite its asserts: no matter
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    if args.seed is not None:
        pytest_args.append(f"--hypothesis-seed={args.seed}")
    if args.database:
        pytest_args += ["-k", args.database]
    return int(pytest.main(pytest_args))


if __name__ == "__main__":
    sys.exit(main())
