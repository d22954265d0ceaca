"""What the cascade saves a run: the estimate of the same run without it, minus the estimate with it.

The flags the cascade answers are in no batch (docs/DESIGN.md §30), so the plan with the cascade
already leaves them out of the estimate; to say what that saves, the same selection is planned
again with the cascade off, in a scratch folder (the run's own planning files are not touched),
and estimated against the same answer cache (docs/DESIGN.md §31).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..costs.estimate import CascadeSavings, Estimate
from ..plan import Plan, build_plan
from ..settings import Settings


def cascade_savings(settings: Settings, plan: Plan, estimate: Estimate) -> CascadeSavings | None:
    """The savings of the cascade in ``plan`` (estimated as ``estimate``); None when it is off."""
    from ..spending import estimate_plan

    if not settings.cascade:
        return None
    local = sum(d.cascaded for d in plan.documents)
    with tempfile.TemporaryDirectory(prefix="cascade-savings-") as scratch:
        plain_settings = settings.model_copy(
            update={"cascade": False, "data_dir": str(Path(scratch) / "data")}
        )
        plain_plan = build_plan(plain_settings)
        plain = estimate_plan(plain_plan, settings)
    return CascadeSavings.between(
        plain, estimate, flags_answered_locally=local, plain_batches=plain_plan.batches
    )
