"""A large run's categorise and merge jobs run in worker processes: the same bytes as in a thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, copy_sample

from llm_categoriser import categorise, steps, workers
from llm_categoriser.plan import build_plan
from llm_categoriser.records import JobSpec, read_record, write_record
from llm_categoriser.settings import resolve
from llm_categoriser.targets import Targets


@pytest.fixture
def in_workers(monkeypatch):
    """Jobs go to the workers, as in the main process of a large run on two cores."""
    monkeypatch.setattr(workers, "cores", lambda: 2)
    workers.use_for_jobs(True)
    yield
    workers.use_for_jobs(False)


def _run_jobs(root: Path) -> dict[str, bytes]:
    """Plan the sample corpus, run every categorise job, then every merge job; the files written."""
    documents = copy_sample(root)
    data = root / "data"
    settings = resolve({"documents_dir": str(documents), "data_dir": str(data)}, env={})
    plan = build_plan(settings)
    layout, targets = settings.layout, Targets(plan, settings)
    for job in plan.jobs:
        steps.run_categorise(
            layout.job_spec(job), layout.job_result(job), layout.log("categorise", job=job), settings
        )
    for job in targets.merges:
        steps.run_merge(
            job, targets.merge_documents(job), layout.merge_record(job), layout.log("merge", job=job)
        )
    written = {}
    for path in sorted([*data.rglob("*.json"), *documents.rglob("*.csv")]):
        if "plan" not in path.relative_to(root).parts and path.name != "language-check-report.csv":
            written[str(path.relative_to(root))] = path.read_bytes()
    assert any("document_reports" in name for name in written)
    return written


def test_jobs_in_workers_write_what_threads_write(tmp_path, monkeypatch, in_workers):
    workers.use_for_jobs(False)
    in_threads = _run_jobs(tmp_path / "threads")
    assert workers.pool_if_any() is None  # a small run starts no worker
    workers.use_for_jobs(True)

    def not_here(*args, **kwargs):
        raise AssertionError("a job ran in the main process")

    # the workers import the package afresh: these stand-ins exist in this process only
    monkeypatch.setattr(categorise, "categorise_part", not_here)
    monkeypatch.setattr(steps, "merge_job", not_here)
    in_processes = _run_jobs(tmp_path / "workers")
    assert workers.pool_if_any() is not None and workers.run(os.getpid) != os.getpid()
    assert in_processes.keys() == in_threads.keys()
    for name, content in in_threads.items():
        # the merge records and statistics name the CSVs, under their own folder
        assert in_processes[name] == content.replace(b"/threads/", b"/workers/"), name


def test_a_job_that_fails_in_a_worker_fails_with_its_message(tmp_path, in_workers):
    documents = copy_sample(tmp_path)
    settings = resolve({"documents_dir": str(documents), "data_dir": str(tmp_path / "data")}, env={})
    plan = build_plan(settings)
    layout = settings.layout
    job = next(iter(plan.jobs))
    spec = read_record(layout.job_spec(job), JobSpec)
    write_record(
        layout.job_spec(job), spec.model_copy(update={"fingerprints": ["0" * 32] * len(spec.fingerprints)})
    )
    with pytest.raises(ValueError, match="changed after"):
        steps.run_categorise(
            layout.job_spec(job), layout.job_result(job), layout.log("categorise", job=job), settings
        )
    assert not Path(layout.job_result(job)).exists()
    log = Path(layout.log("categorise", job=job)).read_text(encoding="utf-8")
    assert "changed after" in log
    assert json.loads(Path(layout.job_spec(job)).read_text(encoding="utf-8"))["job"] == job


def test_one_core_or_a_small_run_keeps_jobs_in_threads(monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 1)
    workers.use_for_jobs(True)
    assert not workers.takes_jobs()
    monkeypatch.setattr(workers, "cores", lambda: 2)
    workers.use_for_jobs(False)
    assert not workers.takes_jobs() and workers.pool_if_any() is None


@pytest.fixture
def eight_cores(monkeypatch):
    """A machine of eight cores, whatever this one has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    yield
    workers.limit_cores(None)
    workers.use_for_jobs(False)


def test_workers_never_outnumber_the_cores_snakemake_was_given(eight_cores):
    workers.limit_cores(None)  # not known: the machine's, at most MAX_WORKERS
    assert workers.size() == workers.MAX_WORKERS
    workers.limit_cores(2)
    assert workers.size() == 2
    workers.limit_cores(1)
    assert workers.size() == 1
    workers.use_for_jobs(True)
    assert not workers.takes_jobs()


@pytest.mark.parametrize(("cores", "in_workers"), [(1, False), (2, True)])
def test_a_large_run_given_one_core_starts_no_worker(tmp_path, monkeypatch, eight_cores, cores, in_workers):
    """``startup.start`` gets Snakemake's ``--cores`` (rules/common.smk): a large run given one
    core plans and runs its jobs in its own process, however many cores the machine has."""
    from llm_categoriser import plan as plan_module
    from llm_categoriser import startup

    monkeypatch.setattr(startup, "PARALLEL_FLAGS", 1)  # the sample counts as a large run
    monkeypatch.setattr(plan_module, "PARALLEL_FLAGS", 1)
    monkeypatch.chdir(tmp_path)
    documents = copy_sample(tmp_path)
    config = {"documents_dir": str(documents), "data_dir": str(tmp_path / "data")}
    _, plan, claim, _ = startup.start(config, True, cores)
    try:
        assert plan.flags > 1
        assert workers.takes_jobs() is in_workers
        assert (workers.pool_if_any() is not None) is in_workers  # the plan was made in workers
    finally:
        if claim is not None:
            claim.close()
        workers.shutdown()


def test_the_cores_given_to_snakemake_are_read_from_its_settings():
    from llm_categoriser.startup import given_cores

    def workflow(cores, local_cores):
        return SimpleNamespace(resource_settings=SimpleNamespace(cores=cores, local_cores=local_cores))

    assert given_cores(workflow(1, 8)) == 1  # --cores 1
    assert given_cores(workflow(None, 3)) == 3  # a cluster run's main process: --local-cores
    assert given_cores(workflow(None, None)) is None


def test_jobs_that_go_to_the_workers_hold_no_core_of_snakemake(monkeypatch):
    """Snakemake keeps more of them under way than there are workers (the workers bound the CPU),
    as many as the profiles' ``worker_jobs`` allow."""
    monkeypatch.setattr(workers, "cores", lambda: 2)
    workers.use_for_jobs(True)
    try:
        assert workers.job_slots(local=True) == (0, 1)
        assert workers.job_slots(local=True, remote_provider=True) == (1, 0)  # stays in its thread
        assert workers.job_slots(local=False) == (1, 0)  # a cluster job asks for its core
    finally:
        workers.use_for_jobs(False)
    assert workers.job_slots(local=True) == (1, 0)  # a small run: jobs in Snakemake's threads


@pytest.mark.parametrize("profile", ["default", "ci"])
def test_local_profiles_bound_the_jobs_under_way_in_the_workers(profile):
    import yaml

    config = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text(encoding="utf-8"))
    limits = dict(item.split("=") for item in config["resources"])
    assert int(limits["worker_jobs"]) >= 2 * workers.MAX_WORKERS


_MAIN_SCRIPT = """
import multiprocessing, os, sys

with open(sys.argv[1], "a") as marks:  # the module's code: runs wherever it is imported
    marks.write(__name__ + "\\n")

if __name__ == "__main__":
    from llm_categoriser import workers

    workers.limit_cores(2)
    print(workers.submit_apart(os.getpid).result() != os.getpid())
    print(workers.pool().submit(os.getpid).result() != os.getpid())
    workers.shutdown()
    other = multiprocessing.get_context("spawn").Process(target=os.getpid)
    other.start()
    other.join()
"""


def test_a_worker_is_started_without_the_main_module_of_its_parent(tmp_path):
    """A run started as ``snakemake ...`` has Snakemake's command-line script as its main module:
    a worker (of the pool, or apart) must not run it again; another spawned process still does."""
    script, marks = tmp_path / "main_script.py", tmp_path / "marks.txt"
    script.write_text(_MAIN_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(marks)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
    assert marks.read_text(encoding="utf-8").split() == ["__main__", "__mp_main__"]
