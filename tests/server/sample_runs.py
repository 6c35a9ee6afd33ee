"""Runs for the server tests, made with the public Run API."""

import math

import torch

import epochal


def make_runs(store: epochal.Store) -> dict[str, str]:
    """Three finished runs of two projects, one with a checkpoint, one with a NaN and an inf."""
    ids = {}
    for name, lr, project in (("alpha", 0.1, "mnist"), ("beta", 0.01, "mnist"), ("gamma", 0.1, "cifar")):
        run = epochal.start(project, name, config={"optim": {"lr": lr, "name": "sgd"}, "seed": 1},
                            tags=["baseline"] if name != "gamma" else ["wide"], store=store)
        for step in range(300):
            run.log({"train/loss": 1.0 / (step + 1) + lr, "train/accuracy": step / 300})
            run.step()
        run.log({"valid/loss": 0.5 + lr, "valid/accuracy": 0.9 - lr})
        if name == "alpha":
            run.log({"odd": math.nan})
            run.step()
            run.log({"odd": math.inf})
            run.step()
            run.log({"odd": 1.0})
            run.save_checkpoint(models=torch.nn.Linear(2, 2))
        run.finish()
        ids[name] = run.id
    return ids
