"""``controlbreast promote``: compare the candidate with the champion; move ``champion`` only with --yes.

Not a DVC stage on purpose: which model serves is a decision, and rerunning a stage must never
change the registry behind DVC's back. Without ``--yes`` nothing changes (CI can run it to report).
"""

from __future__ import annotations

from pathlib import Path

from controlbreast.classify.registry import CHAMPION, RULE, candidate_version, promote_if_better, verdict
from controlbreast.config import load_config
from controlbreast.tracking import use_store


def main(params: Path, version: str | None, yes: bool) -> None:
    """Print the verdict for ``version`` (default: the candidate); apply it when ``yes``."""
    use_store(load_config(params))
    print(f"promote: the rule: {RULE}")
    version = version or candidate_version()
    decision = promote_if_better(version) if yes else verdict(version)
    against = f" (champion: version {decision.previous_champion})" if decision.previous_champion else ""
    if not decision.promoted:
        print(f"promote: version {version} stays a candidate{against}: {decision.reason}")
    elif yes:
        print(f"promote: version {version} is now {CHAMPION}{against}: {decision.reason}")
    else:
        print(f"promote: version {version} would become {CHAMPION}{against}: {decision.reason} "
              "(dry run: add --yes to apply)")
