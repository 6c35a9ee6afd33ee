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


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_dynamics_run(store: epochal.Store, name: str, *, samples: int = 300, epochs: int = 3,
                      sprites: bool = True, class_names: bool = True) -> epochal.Run:
    """A small MLP trained on scikit-learn's digits, its dynamics recorded after every epoch with
    run.record_dynamics: the first 80% of ``samples`` as train, the rest as test; 8x8 sprites and the
    class names when asked. Finished, and returned for its id and folder."""
    from sklearn.datasets import load_digits

    from epochal.dynamics import files

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:samples] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[:samples])
    train = torch.arange(samples) < samples * 4 // 5
    split = ["train" if t else "test" for t in train.tolist()]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    run = epochal.start("digits", name, store=store)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(int(train.sum()), generator=generator)
        for batch in order.split(32):
            loss = torch.nn.functional.cross_entropy(model(x[train][batch]), y[train][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss})
            run.step()
        run.record_dynamics(model, x, y, split=split, image_shape=(8, 8) if sprites else None)
        run.epoch()
    if class_names:
        files.write_json(files.dynamics_folder(run.path) / files.CLASSES_FILE, DIGIT_NAMES[: int(y.max()) + 1])
    run.finish()
    return run
