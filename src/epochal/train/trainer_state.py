"""What a Trainer's checkpoint holds beyond the model and optimizer, and how a Trainer is put back from it.

Each callback's state (keyed by class name), the loaders' generators, the best epoch so far, the
order a DistributedSampler shuffles in, and, for a checkpoint taken part-way through an epoch
(Ctrl-C), the point reached (see :mod:`epochal.train.resume`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from epochal.errors import CheckpointError
from epochal.logs import logger
from epochal.train.callback import Callback
from epochal.train.resume import Position, generator_states, set_generator_states


def keyed_callbacks(callbacks: Sequence[Callback]) -> list[tuple[str, Callback]]:
    """Each callback under its class name; a second one of a class gets '-2', and so on."""
    seen: dict[str, int] = {}
    keyed = []
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((name if seen[name] == 1 else f"{name}-{seen[name]}", callback))
    return keyed


def saved_state(trainer: Any, mid_epoch: bool) -> dict:
    """The ``extra`` of a Trainer checkpoint: everything but the model, optimizer, scheduler and scaler."""
    if mid_epoch:  # a stop asked for but not yet acted on is part of where the fit stands
        trainer.resume_state.stop = trainer.stop_reason if trainer.should_stop else None
    sampler = getattr(trainer.loaders.get("train"), "sampler", None)
    return {
        "callbacks": {key: callback.state_dict() for key, callback in keyed_callbacks(trainer.callbacks)},
        "loaders": generator_states(trainer.loaders),
        "trainer": {"best": None if trainer.best is None else list(trainer.best),
                    "point": trainer.resume_state.state_dict() if mid_epoch else None,
                    "data_seed": getattr(sampler, "seed", None)},
    }


def restore(trainer: Any, status_before: str | None) -> Position | None:
    """Load the run's last checkpoint into ``trainer``; the position to continue from, if mid-epoch.

    Raises:
        CheckpointError: the run cannot be resumed (no resumable checkpoint after it finished, or
            one that does not fit the trainer).
    """
    run = trainer.run
    if not any(c.kind == "resume" for c in run.checkpoints()):
        if status_before == "finished":
            raise CheckpointError(
                f"cannot resume run {run.name!r} ({run.id}): it finished without a resumable checkpoint "
                "(trained with checkpoint=False?); start a new run with fit() instead"
            )
        logger.info(f"run {run.name} ({run.id}) stopped before its first checkpoint; training it again "
                    "from epoch 0 (its new points replace the old)")
        run.set_counters(0, 0)
        return None
    try:
        loaded = run.load_checkpoint(
            "last", models={"model": trainer.module},
            optimizers=None if trainer.optimizer is None else {"optimizer": trainer.optimizer},
            schedulers=None if trainer.scheduler is None else {"scheduler": trainer.scheduler}, scaler=trainer.scaler,
        )
        extra = loaded.extra or {}
        saved = extra.get("callbacks", {})
        for key, callback in keyed_callbacks(trainer.callbacks):
            if key in saved:
                callback.load_state_dict(saved[key])
        set_generator_states(trainer.loaders, extra.get("loaders", {}))
        trainer_state = extra.get("trainer", {})
        sampler = getattr(trainer.loaders["train"], "sampler", None)
        if trainer_state.get("data_seed") is not None and hasattr(sampler, "seed"):
            sampler.seed = int(trainer_state["data_seed"])  # the order the saved run shuffled its shares in
        if trainer_state.get("partial") is not None:
            raise CheckpointError("it was saved part-way through an epoch by an older epochal, which this one "
                                  "cannot continue; resume it with the epochal that saved it")
        point = trainer_state.get("point")
        if point is not None:
            trainer.resume_state.load_state_dict(point)
        position = None if point is None else trainer.resume_state.position
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume run {run.name!r} ({run.id}): {exc}") from exc
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # a state dict that does not fit its object
        raise CheckpointError(
            f"cannot resume run {run.name!r} ({run.id}): its last checkpoint does not fit this trainer's "
            f"model, optimizer, scheduler or callbacks ({type(exc).__name__}: {exc}); build them as the run "
            "that saved it did"
        ) from exc
    trainer.best = None if trainer_state.get("best") is None else tuple(trainer_state["best"])
    if position is not None and position.stop is not None:
        trainer.should_stop, trainer.stop_reason = True, position.stop
    trainer.epoch = position.epoch if position is not None else run.epochs
    where = "" if position is None or position.phase == "start" else f" ({position.describe()})"
    logger.info(f"resumed run {run.name} ({run.id}) at epoch {run.epochs}, step {run.steps}{where}")
    return None if position is None or position.phase == "start" else position
