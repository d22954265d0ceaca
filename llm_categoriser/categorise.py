"""Categorise one batch: prompt, call, validate, ask again for what is missing (docs/DESIGN.md §5)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from .answers import save_answer
from .costs.meter import SpendMeter
from .costs.prices import format_usd
from .costs.usage import TokenUsage
from .fallback import ProviderChain
from .layout import Layout
from .limits import RequestLimiter, estimate_tokens
from .prompts import Templates, load_templates, render_user
from .providers.base import Answer, Provider, ProviderError, Request
from .records import BatchResult, FlagResult, PlannedBatch
from .validation import ParsedAnswer, parse_answer

log = logging.getLogger(__name__)


def apply_answer(
    parsed: ParsedAnswer,
    pending: set[int],
    results: dict[int, FlagResult],
    attempt: int,
    earlier: dict[int, str] | None = None,
) -> dict[int, str]:
    """Record accepted answers; return the problem of each flag still pending.

    ``status`` is ``repaired`` when the answer itself needed a repair; an answer that only came
    on a later attempt stays ``ok`` but says so in its notes (the ``error`` column).
    """
    problems: dict[int, str] = {}
    for local_id in sorted(pending):
        accepted = parsed.accepted.get(local_id)
        if accepted is not None:
            notes = list(accepted.notes)
            retry_note = []
            if attempt > 1 and earlier and local_id in earlier:
                retry_note = [f"answered on attempt {attempt} (before: {earlier[local_id][:120]})"]
            results[local_id] = FlagResult(
                status="repaired" if notes else "ok",
                error_category=accepted.error_category,
                confidence_score=accepted.confidence_score,
                reasoning=accepted.reasoning,
                attempts=attempt,
                notes=notes + retry_note,
            )
        else:
            problems[local_id] = parsed.rejected.get(local_id) or (
                "; ".join(parsed.problems)
                if parsed.problems and not parsed.accepted
                else "no answer for this flag"
            )
    return problems


def categorise_batch(
    batch: PlannedBatch,
    provider: Provider,
    max_retries: int,
    templates: Templates | None = None,
    logger: logging.Logger | None = None,
    first_answer: Answer | None = None,
    limiter: RequestLimiter | None = None,
    raise_unavailable: bool = False,
    meter: SpendMeter | None = None,
) -> BatchResult:
    """Categorise ``batch``; ``first_answer`` (a batch job's answer) stands in for the first call.

    With a ``limiter``, every request holds one of its slots while it is sent (concurrency,
    requests and tokens per minute: ``limits.py``). A provider that stays unavailable after its
    retries (ProviderError ``unavailable``) leaves the flags it was asked about failed, unless
    ``raise_unavailable`` (another provider of the chain can take the batch). With a ``meter``,
    each answer's reported usage is priced at the rates of the provider and model that gave it
    (the batch rate for a remote job's answer) and added to the run's spend; without one, the
    cost is left unknown (None). The cap is checked before a batch is started
    (``categorise_part``, ``remote_jobs.submit``), not here: the follow-up requests of a batch
    already started are sent, so that its answers are complete and cached and a rerun never
    sends them again (docs/DESIGN.md §31).
    """
    logger = logger or log
    templates = templates or load_templates()
    by_local = {flag.local_id: flag for flag in batch.flags}
    pending = set(by_local)
    results: dict[int, FlagResult] = {}
    problems: dict[int, str] = {}
    requests = 0
    usage = TokenUsage()
    cost: Decimal | None = Decimal(0) if meter is not None else None
    for attempt in range(1, max_retries + 2):
        if not pending:
            break
        from_job = attempt == 1 and first_answer is not None
        if attempt == 1 and first_answer is not None:  # the remote job's answer: nothing to render
            answer = first_answer
        else:
            if attempt == 1:
                user = render_user(batch, templates=templates)
            else:
                summary = "; ".join(sorted(set(problems.values())))[:300]
                user = render_user(batch, local_ids=pending, problems=summary, templates=templates)
            request = Request(
                key=f"{batch.batch_id}#{attempt}",
                system=templates.system,
                user=user,
                batch=batch,
                local_ids=set(pending),
            )
            try:
                if limiter is None:
                    answer = provider.generate(request)
                else:
                    with limiter.slot(estimate_tokens(request.system, request.user)):
                        answer = provider.generate(request)
            except ProviderError as exc:
                if exc.kind != "unavailable" or raise_unavailable:
                    raise
                answer = Answer(text=None, error=str(exc))
        requests += 1
        usage = usage + answer.usage
        if meter is not None:
            charged = meter.charge(answer.usage, batch=from_job, provider=provider.name, model=provider.model)
            cost = None if cost is None or charged is None else cost + charged
        if answer.text is None:
            problems = {i: answer.error or "no answer" for i in pending}
            logger.warning("%s attempt %d: %s", batch.batch_id, attempt, answer.error)
            continue
        parsed = parse_answer(answer.text, set(pending))
        if answer.notes:
            for accepted in parsed.accepted.values():
                accepted.notes = [*answer.notes, *accepted.notes]
        problems = apply_answer(parsed, pending, results, attempt, problems)
        if parsed.problems:
            logger.info("%s attempt %d: %s", batch.batch_id, attempt, "; ".join(parsed.problems))
        pending = set(problems)
    for local_id in pending:
        results[local_id] = FlagResult(
            status="failed",
            error=(
                f"not categorised after {max_retries + 1} attempt(s): {problems.get(local_id, 'no answer')}"
            ),
            attempts=max_retries + 1,
        )
    return BatchResult(
        batch_id=batch.batch_id,
        fingerprint=batch.fingerprint,
        provider=provider.name,
        model=provider.model,
        items={by_local[i].key: results[i] for i in sorted(results)},
        requests=requests,
        input_tokens=usage.input_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.output_tokens,
        thinking_tokens=usage.thinking_tokens,
        cost_usd=None if cost is None else float(cost),
    )


def over_budget(batch: PlannedBatch, provider: str, model: str, reason: str) -> BatchResult:
    """The result of a batch that was not sent because the run reached its cost cap."""
    return BatchResult(
        batch_id=batch.batch_id,
        fingerprint=batch.fingerprint,
        provider=provider,
        model=model,
        items={flag.key: FlagResult(status="over_budget", error=reason) for flag in batch.flags},
    )


def categorise_part(
    batches: list[PlannedBatch],
    provider: Callable[[], Provider] | ProviderChain,
    layout: Layout,
    max_retries: int,
    reuse: bool = True,
    logger: logging.Logger | None = None,
    limiter: RequestLimiter | None = None,
    meter: SpendMeter | None = None,
) -> tuple[list[BatchResult], int]:
    """Categorise ``batches``; return their results (in order) and how many were reused.

    A batch with a complete answer in the cache (``answers.py``) is not sent again when
    ``reuse``; every new complete answer is saved there atomically as soon as it arrives, so a
    crash loses at most the requests in flight. ``provider`` is the provider chain
    (``fallback.py``: a spent provider hands over to the next), or a factory of one provider;
    each provider is made once, when a batch needs it. With a ``limiter`` the batches go out
    concurrently, from a pool of its ``max_concurrent`` threads (the limiter, shared by every
    job of the process, bounds what is really in flight); without one, one after another.
    A reused answer counts no request and no cost. Once the run has reached its cost cap
    (``meter``), a batch not yet started is not sent: its flags are ``over_budget`` and a rerun
    with a higher cap asks. Without a limiter, the requests that cost nothing (the offline
    rules') are added to the run's spend ledger once, when the job ends (``TalliedMeter``); what
    the ledger keeps in memory until a job ends (a run without a cap) is written when it ends.
    """
    logger = logger or log
    chain = provider if isinstance(provider, ProviderChain) else ProviderChain.single(provider, logger)
    if meter is not None and limiter is None:  # one request after another: count the free ones
        meter = meter.tally()
    try:
        return _categorise_part(batches, chain, layout, max_retries, reuse, logger, limiter, meter)
    finally:
        if meter is not None:
            meter.flush()


def _categorise_part(
    batches: list[PlannedBatch],
    chain: ProviderChain,
    layout: Layout,
    max_retries: int,
    reuse: bool,
    logger: logging.Logger,
    limiter: RequestLimiter | None,
    meter: SpendMeter | None,
) -> tuple[list[BatchResult], int]:
    results: list[BatchResult | None] = [None] * len(batches)
    waiting: list[int] = []
    for index, batch in enumerate(batches):
        saved = chain.cached(layout, batch) if reuse else None
        if saved is not None:
            results[index] = saved.as_reused()
        else:
            waiting.append(index)
    reused = len(batches) - len(waiting)
    if meter is not None:
        meter.reused(reused)
    if not waiting:
        return [r for r in results if r is not None], reused
    templates = load_templates()

    def one(index: int) -> BatchResult:
        batch = batches[index]
        if meter is not None and not meter.can_send():
            reason = meter.stop_reason()
            logger.warning("%s: %s", batch.batch_id, reason)
            return over_budget(batch, meter.provider, meter.model, reason)
        started = time.perf_counter()
        result = chain.answer(
            batch,
            lambda seen, made, more: categorise_batch(
                seen,
                made,
                max_retries,
                templates,
                logger,
                limiter=limiter,
                raise_unavailable=more,
                meter=meter,
            ),
        )
        save_answer(layout, result)
        logger.info(
            "%s: %d flag(s) %s, %d request(s), %s in %.2f s",
            batch.batch_id,
            len(result.items),
            dict(Counter(item.status for item in result.items.values())),
            result.requests,
            format_usd(result.cost_usd),
            time.perf_counter() - started,
        )
        return result

    workers = min(len(waiting), limiter.limits.max_concurrent if limiter else 1)
    if workers <= 1:
        for index in waiting:
            results[index] = one(index)
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="categorise")
        try:
            for index, result in zip(waiting, pool.map(one, waiting), strict=True):
                results[index] = result
        finally:
            # a fatal error (an invalid key) stops the job: nothing more is sent
            pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None], reused
