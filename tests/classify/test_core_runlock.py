"""One writer per run folder: a second run into the same --out fails in one line
naming the holder; a lock left by a dead process is taken over; ablation cells are claimed."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from classify_helpers import claim_and_hold, hold_folder_lock

from classify.core.errors import UserError
from classify.core.runlock import LOCK_NAME, folder_lock


def _other_process_holds(folder: Path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=hold_folder_lock, args=(str(folder), ready, release))
    proc.start()
    assert ready.wait(20), "the holder process did not start"
    return proc, release


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    proc, release = _other_process_holds(tmp_path / "run")
    try:
        with pytest.raises(UserError, match=rf"in use by pid {proc.pid} on .*`test holder`"):
            with folder_lock(tmp_path / "run", "second"):
                pass
    finally:
        release.set()
        proc.join(20)
    with folder_lock(tmp_path / "run", "third"):  # released when the holder finished
        pass
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(tmp_path):
    proc, release = _other_process_holds(tmp_path / "run")
    proc.kill()
    proc.join(20)
    notes = []
    with folder_lock(tmp_path / "run", "after the crash", notes.append):
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and "took over" in notes[0] and str(proc.pid) in notes[0]


def test_classify_train_and_gen_sample_refuse_a_folder_in_use(tmp_path):
    from classify.train.trainer import ClassifierTrainConfig, train_classifier
    from gen.sample.filters import FilterConfig
    from gen.sample.runner import SampleConfig, run_sample

    proc, release = _other_process_holds(tmp_path / "run")
    try:
        with pytest.raises(UserError, match="in use by"):
            train_classifier(ClassifierTrainConfig(data_dir=str(tmp_path / "nodata"),
                                                   out_dir=str(tmp_path / "run"),
                                                   res=16, batch=8, epochs=1, progress=False))
        with pytest.raises(UserError, match="in use by"):
            run_sample(SampleConfig(generator=str(tmp_path / "nogen"), out_dir=str(tmp_path / "run"), n=2,
                                    filters=FilterConfig(filters=[])))
    finally:
        release.set()
        proc.join(20)


def test_an_ablation_cell_held_elsewhere_is_skipped_not_trained_twice(tmp_path):
    from classify.ablate.cell import CellTask
    from classify.ablate.design import Cell
    from classify.ablate.runner import CLAIMED_ELSEWHERE, execute_cell

    cell = Cell("baseline", "resnet18", 0, 1.0, None)
    task = CellTask(cell, {"device": "cpu"}, str(tmp_path / "w"), False, 0, None)
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=claim_and_hold,
                       args=(str(tmp_path / "claims" / f"{cell.id}.lock"), ready, release))
    proc.start()
    assert ready.wait(20)
    calls = []
    try:
        result = execute_cell(task, lambda t: calls.append(t) or {"metrics": {}}, str(tmp_path))
    finally:
        release.set()
        proc.join(20)
    assert result[1] == CLAIMED_ELSEWHERE and not calls
    start = time.perf_counter()
    cell_id, error, _ = execute_cell(task, lambda t: calls.append(t) or {"metrics": {"roc_auc": 0.5}},
                                     str(tmp_path))
    assert error == "" and len(calls) == 1 and time.perf_counter() - start < 20
    # Finished now: a later attempt (a second process that planned before) does not train it again.
    assert execute_cell(task, lambda t: calls.append(t) or {"metrics": {}},
                        str(tmp_path))[1] == CLAIMED_ELSEWHERE
    assert len(calls) == 1


def test_gen_train_refuses_a_run_folder_in_use(tmp_path):
    from gen.train.config import GanTrainConfig
    from gen.train.recipes import run_recipe

    proc, release = _other_process_holds(tmp_path / "gan")
    try:
        with pytest.raises(UserError, match="in use by"):
            run_recipe(GanTrainConfig(out_dir=str(tmp_path / "gan"), classes=["bad"]), log=lambda m: None)
    finally:
        release.set()
        proc.join(20)
