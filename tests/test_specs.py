"""Spec validation names the offending field (pure Python, no database)."""

from __future__ import annotations

import pytest

from conftest import SEED
from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.core.specs import DEMO_TARGET, validate_job
from jupyter_jobctl.core.states import TRANSITIONS, can_transition


def demo(**config):
    return {"target": DEMO_TARGET, "config": {**SEED, **config}}


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("nope", {}, "kind"),
        (None, {}, "kind"),
        ("training", [], "spec"),
        ("training", {}, "spec.target"),
        ("training", {"target": 3}, "spec.target"),
        ("training", {"target": "not a target"}, "spec.target"),
        ("training", {"target": "m:f", "config": []}, "spec.config"),
        ("training", {"target": "m:f", "bogus": 1}, "spec.bogus"),
        ("training", {"target": "m:f", "cwd": "/definitely/not/here"}, "spec.cwd"),
        ("training", {"target": "m:f", "env": {"A": 1}}, "spec.env.A"),
        ("training", {"target": "m:f", "env": {"1BAD": "x"}}, "spec.env.1BAD"),
        ("training", demo(epochs=0), "spec.config.epochs"),
        ("training", demo(epochs=-1), "spec.config.epochs"),
        ("training", demo(epochs=2.5), "spec.config.epochs"),
        ("training", demo(epochs=True), "spec.config.epochs"),
        ("training", demo(epochs="5"), "spec.config.epochs"),
        ("training", demo(batch_size=0), "spec.config.batch_size"),
        ("training", demo(learning_rate=0), "spec.config.learning_rate"),
        ("training", demo(learning_rate=float("nan")), "spec.config.learning_rate"),
        ("training", demo(optimizer="lbfgs"), "spec.config.optimizer"),
        ("training", demo(mode="fast"), "spec.config.mode"),
        ("training", demo(typo=1), "spec.config.typo"),
        ("command", {}, "spec.argv"),
        ("command", {"argv": []}, "spec.argv"),
        ("command", {"argv": "ls"}, "spec.argv"),
        ("command", {"argv": ["ls", 3]}, "spec.argv[1]"),
        ("command", {"argv": ["ls\x00"]}, "spec.argv[0]"),
        ("test_batch", {"args": "tests/"}, "spec.args"),
    ],
)
def test_bad_specs_name_the_field(kind, spec, field) -> None:
    with pytest.raises(SpecError) as err:
        validate_job(kind, spec)
    assert err.value.field == field
    assert str(err.value).endswith(".")  # a sentence


def test_epochs_message_reads_well() -> None:
    with pytest.raises(SpecError, match=r"^spec.config.epochs must be a positive integer.$"):
        validate_job("training", demo(epochs=-1))


def test_demo_defaults_are_filled_in() -> None:
    _, name, spec = validate_job("training", {"target": DEMO_TARGET})
    assert spec["config"] == {
        "mode": "smoke_test",
        "epochs": 5,
        "batch_size": 32,
        "learning_rate": 0.001,
        "optimizer": "adam",
        "seed": 0,
    }
    assert name == DEMO_TARGET


def test_valid_specs(tmp_path) -> None:
    assert validate_job("command", {"argv": ["echo", "hi"]}, "say hi")[1] == "say hi"
    assert validate_job("test_batch", {})[2] == {"args": []}
    spec = validate_job("training", {"target": "x.py", "cwd": str(tmp_path), "env": {"A": "1"}})[2]
    assert spec == {"target": "x.py", "config": {}, "cwd": str(tmp_path), "env": {"A": "1"}}
    with pytest.raises(SpecError) as err:
        validate_job("command", {"argv": ["x"]}, name="n" * 201)
    assert err.value.field == "name"


def test_transition_table() -> None:
    assert can_transition("pending", "initializing")
    assert can_transition("pending", "cancelled")
    assert can_transition("paused", "stopping")
    assert not can_transition("running", "pending")
    for terminal in ("completed", "failed", "cancelled", "lost"):
        assert all(terminal not in sources for sources in TRANSITIONS.values())
