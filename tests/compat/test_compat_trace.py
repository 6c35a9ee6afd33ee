"""epochal.compat.trace: the trace seed's API, its files, its old pickles, and an exact resume."""

from __future__ import annotations

import inspect
import json
import os
import pickle
import random
import subprocess
import sys
import types

import matplotlib.pyplot
import numpy as np
import pytest
import torch
import trace_parts as parts
from torch import nn
from trace_parts import ConvM, make_data, train_loop

import epochal
from epochal.cli import main as cli
from epochal.compat import trace
from epochal.compat.trace import ModelRebuildError, Statistic, StatisticError, load_statistic, sys_load

KEYS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy",
        "test_loss": "test/loss", "test_accuracy": "test/accuracy"}


def _train(statis, model, optimizer, epochs, loaders):
    loss_fn = nn.CrossEntropyLoss()
    train_ds, test_ds = loaders
    for _ in range(epochs):
        train_loop(train_ds, model, loss_fn, optimizer, statis)
        parts.test_loop(test_ds, model, loss_fn, statis)


def _no_blocking_show(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plt.show() was called")

    monkeypatch.setattr(matplotlib.pyplot, "show", refuse)


def test_readme_example_runs_and_records_everything(tmp_path, store_dir, monkeypatch, capsys):
    _no_blocking_show(monkeypatch)
    monkeypatch.setenv("EPOCHAL_DIR", str(store_dir))
    statis_path, model_path = str(tmp_path / "convm"), str(tmp_path / "convm.pth")
    torch.manual_seed(0)
    train_ds, test_ds = make_data()
    model = ConvM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()

    # The README's usage, its import lines changed to epochal's.
    from epochal.compat import trace
    from epochal.compat.trace import Statistic

    statis = Statistic(statis_path)
    for _ in range(2):
        train_loop(train_ds, model, loss_fn, optimizer, statis)
        parts.test_loop(test_ds, model, loss_fn, statis)
    syst = trace.Sys(model, model_path, statis)
    syst.sys_conclude("ConvM(4_categ)")

    assert "Model and statis saved. Adjustment times: 8" in capsys.readouterr().out
    assert len(statis.train_loss) == 8 and len(statis.test_accuracy) == 2
    assert (tmp_path / "convm" / "Train_monitor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "convm" / "object.pkl").exists()  # nothing pickled
    saved = json.loads((tmp_path / "convm" / "statistic.json").read_text())
    assert saved["train_loss"] == statis.train_loss and saved["test_accuracy"] == statis.test_accuracy
    weights = torch.load(model_path, weights_only=True)["models"]["model"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())

    store = epochal.Store(store_dir)
    record = store.run("convm")
    assert record.project == "trace" and record.id == statis.run_id
    for attribute, key in KEYS.items():
        history = store.history(record, key)
        assert history.values.tolist() == getattr(statis, attribute)
        assert history.steps.tolist() == list(range(len(getattr(statis, attribute))))
    assert len(store.checkpoints(record)) == 1
    statis.close()
    assert cli(["ls", "--store", str(store_dir)]) == 0
    assert "convm" in capsys.readouterr().out


def test_draw_renders_without_pyplot_unless_asked(tmp_path, store_dir, monkeypatch):
    statis = Statistic(tmp_path / "s", store=store_dir)
    statis.train_loss.extend([1.0, 0.5])
    statis.test_loss += [0.7]
    _no_blocking_show(monkeypatch)
    figures_before = matplotlib.pyplot.get_fignums()
    chart = statis.draw("M")
    assert chart == tmp_path / "s" / "Train_monitor.png" and chart.stat().st_size > 0
    assert matplotlib.pyplot.get_fignums() == figures_before
    assert (tmp_path / "s" / "statistic.json").is_file()  # draw saves, as the original's did

    shown = []
    monkeypatch.setattr(matplotlib.pyplot, "show", lambda *a, **k: shown.append(True))
    statis.draw("M", show=True)
    matplotlib.pyplot.close("all")
    assert shown == [True]


def test_append_refuses_what_is_not_a_number(tmp_path, store_dir):
    statis = Statistic(tmp_path / "s", store=store_dir)
    statis.train_loss.append(torch.tensor(0.25))
    statis.train_loss.append(np.float32(0.5))
    with pytest.raises(TypeError, match="train/loss"):
        statis.train_loss.append("0.1")
    with pytest.raises(TypeError):
        statis.train_loss.append(torch.ones(3))
    assert statis.train_loss == [0.25, 0.5] and all(type(v) is float for v in statis.train_loss)


def test_save_and_load_continue_the_same_run(tmp_path, store_dir):
    statis = Statistic(tmp_path / "s", name="first", store=store_dir)
    statis.train_loss.extend([3.0, 2.0])
    statis.test_accuracy.append(0.5)
    statis.save()
    statis.close()

    loaded = load_statistic(tmp_path / "s", store=store_dir)
    assert loaded.run_id == statis.run_id and loaded.name == "first"
    assert (loaded.train_loss, loaded.test_accuracy, loaded.test_loss) == ([3.0, 2.0], [0.5], [])
    loaded.train_loss.append(1.0)
    loaded.save()
    store = epochal.Store(store_dir)
    assert store.history("first", "train/loss").values.tolist() == [3.0, 2.0, 1.0]
    assert store.history("first", "train/loss").steps.tolist() == [0, 1, 2]
    assert len(store.runs()) == 1

    # Loading again in the same process, while `loaded` holds the run open, takes the run over.
    again = load_statistic(tmp_path / "s" / "statistic.json", store=store_dir)
    again.test_accuracy.append(0.75)
    again.close()
    assert store.history("first", "test/accuracy").values.tolist() == [0.5, 0.75]


def _original_statistic_class(monkeypatch, module="trace"):
    """A stand-in for the original tool's class, importable as `module.Statistic` as pickle needs."""
    fake = types.ModuleType(module)

    class Statistic:
        def __init__(self, path):
            self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy = [], [], [], []
            self.path = path

    Statistic.__module__, Statistic.__qualname__ = module, "Statistic"
    fake.Statistic = Statistic
    monkeypatch.setitem(sys.modules, module, fake)
    return Statistic


@pytest.mark.parametrize("module", ["trace", "__main__", "tracer"])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_reads_a_pickle_written_by_the_original(tmp_path, store_dir, monkeypatch, module, protocol):
    Original = _original_statistic_class(monkeypatch, module)
    old = Original(str(tmp_path / "old"))
    old.train_loss += [1.5, 1.25, 1]
    old.train_accuracy += [0.25, 0.5, 0.75]
    old.test_loss.append(1.1)
    old.test_accuracy.append(0.6)
    (tmp_path / "old").mkdir()
    with open(tmp_path / "old" / "object.pkl", "wb") as file:  # as the original's save() did
        pickle.dump(old, file, protocol=protocol)
    monkeypatch.delitem(sys.modules, module)  # the original tool is not installed any more

    statis = load_statistic(tmp_path / "old", store=store_dir)
    assert isinstance(statis, Statistic)
    assert statis.train_loss == [1.5, 1.25, 1.0] and statis.test_accuracy == [0.6]
    store = epochal.Store(store_dir)
    assert store.history(statis.run_id, "train/accuracy").values.tolist() == [0.25, 0.5, 0.75]
    assert json.loads((tmp_path / "old" / "statistic.json").read_text())["run_id"] == statis.run_id
    statis.train_loss.append(0.5)  # and it goes on from there
    statis.close()
    assert store.history(statis.run_id, "train/loss").values.tolist() == [1.5, 1.25, 1.0, 0.5]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, store_dir, monkeypatch):
    marker = tmp_path / "pwned"
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "object.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(StatisticError, match=r"object\.pkl.*refused to load the global (posix|nt)\.system"):
        load_statistic(folder, store=store_dir)

    # The same call hidden inside a genuine-looking Statistic.
    Original = _original_statistic_class(monkeypatch)
    old = Original(str(folder))
    old.train_loss.append(_Exploit(marker))
    (folder / "object.pkl").write_bytes(pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL))
    with pytest.raises(StatisticError, match=r"refused to load the global (posix|nt)\.system"):
        load_statistic(folder, store=store_dir)

    assert not marker.exists()
    assert not (folder / "statistic.json").exists()
    assert epochal.Store(store_dir).runs() == []


def test_a_pickle_with_other_values_or_objects_is_refused(tmp_path, store_dir, monkeypatch):
    Original = _original_statistic_class(monkeypatch)
    old = Original("x")
    old.test_loss.append("0.5")
    (tmp_path / "object.pkl").write_bytes(pickle.dumps(old))
    with pytest.raises(StatisticError, match=r"object\.pkl: test_loss\[0\] should be a number"):
        load_statistic(tmp_path, store=store_dir)

    old.test_loss[0] = torch.tensor(0.5)
    (tmp_path / "object.pkl").write_bytes(pickle.dumps(old))
    with pytest.raises(StatisticError, match=r"refused to load the global torch\."):
        load_statistic(tmp_path, store=store_dir)

    (tmp_path / "object.pkl").write_bytes(pickle.dumps([1.0, 2.0]))
    with pytest.raises(StatisticError, match="holds a list, not a Statistic"):
        load_statistic(tmp_path, store=store_dir)
    assert epochal.Store(store_dir).runs() == []


def test_missing_and_damaged_files_are_named(tmp_path, store_dir):
    with pytest.raises(StatisticError, match=r"nowhere.*statistic\.json.*object\.pkl"):
        load_statistic(tmp_path / "nowhere", store=store_dir)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "object.pkl").write_bytes(pickle.dumps({"x": 1})[:-5])
    with pytest.raises(StatisticError, match=r"a/object\.pkl"):
        load_statistic(tmp_path / "a", store=store_dir)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "statistic.json").write_text('{"format": "epochal.compat.trace/statistic", "train_')
    with pytest.raises(StatisticError, match=r"b/statistic\.json"):
        load_statistic(tmp_path / "b", store=store_dir)
    (tmp_path / "b" / "statistic.json").write_text('{"format": "epochal.compat.trace/statistic", "train_loss": 1}')
    with pytest.raises(StatisticError, match="train_loss should be a list"):
        load_statistic(tmp_path / "b", store=store_dir)
    assert epochal.Store(store_dir).runs() == []


def test_sys_load_reads_plain_state_dicts_into_a_model_given(tmp_path, store_dir):
    statis = Statistic(tmp_path / "s", store=store_dir)
    statis.save()
    model = ConvM()
    torch.save(model.state_dict(), tmp_path / "m.pth")
    loaded, _ = sys_load(tmp_path / "m.pth", tmp_path / "s", model=ConvM(), store=store_dir)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
    # Weights alone do not say what model they belong to.
    with pytest.raises(ModelRebuildError, match=r"m\.pth: it holds a plain state dict.*model=YourModel"):
        sys_load(tmp_path / "m.pth", tmp_path / "s", store=store_dir)
    with pytest.raises(epochal.CheckpointError, match="no checkpoint file"):
        sys_load(tmp_path / "missing.pth", tmp_path / "s", model=ConvM(), store=store_dir)
    with pytest.raises(epochal.CheckpointError, match="no checkpoint file"):
        sys_load(tmp_path / "missing.pth", tmp_path / "s", store=store_dir)
    with pytest.raises(TypeError, match="optimizer or scheduler but no model"):
        sys_load(tmp_path / "m.pth", tmp_path / "s", optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                 store=store_dir)


def _halves(tmp_path, store_dir, *, restore_optimizer):
    torch.manual_seed(0)
    loaders = make_data()
    model = ConvM()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    folder, model_path = tmp_path / "halves", tmp_path / "halves.pth"
    statis = Statistic(folder, store=store_dir)
    _train(statis, model, optimizer, 2, loaders)
    trace.Sys(model, model_path, statis, optimizer if restore_optimizer else None).sys_conclude("ConvM")
    statis.close()

    # A new process, in effect: fresh model and optimizer, other random states.
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    model = ConvM()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model, statis = sys_load(model_path, folder, model=model,
                             optimizer=optimizer if restore_optimizer else None, store=store_dir)
    _train(statis, model, optimizer, 2, loaders)
    statis.close()
    return statis, model


def test_resume_through_sys_continues_the_curve_exactly(tmp_path, store_dir, capsys):
    torch.manual_seed(0)
    loaders = make_data()
    model = ConvM()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    with Statistic(tmp_path / "straight", store=store_dir) as straight:
        _train(straight, model, optimizer, 4, loaders)

    halves, resumed_model = _halves(tmp_path, store_dir, restore_optimizer=True)
    for attribute in KEYS:
        assert getattr(halves, attribute) == getattr(straight, attribute)  # bit for bit
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed_model.parameters()))
    store = epochal.Store(store_dir)
    for key in KEYS.values():
        a, b = store.history("straight", key), store.history("halves", key)
        assert a.values.tolist() == b.values.tolist() and a.steps.tolist() == b.steps.tolist()
    assert store.run("halves").segment == 1  # one run, resumed once

    # Without the optimizer's state (the original tool), the curve does not continue the same way.
    jumped, _ = _halves(tmp_path / "no-optimizer", store_dir, restore_optimizer=False)
    assert jumped.train_loss[:8] == straight.train_loss[:8]
    assert jumped.train_loss[8:] != straight.train_loss[8:]


# -- sys_load(model_path, statis_path): the model rebuilt from what Sys recorded -----------------------------

_TRAIN = """
import sys
import torch
from torch import nn
from epochal.compat import trace
from epochal.compat.trace import ModelRebuildError, Statistic
from trace_parts import make_data, test_loop, train_loop
{model_code}
model_path, statis_path, reference = sys.argv[1:4]
torch.manual_seed(0)
train_ds, test_ds = make_data()
model = Classifier(6, hidden=24, activation="tanh")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
statis = Statistic(statis_path)
for _ in range(2):
    train_loop(train_ds, model, loss_fn, optimizer, statis)
    test_loop(test_ds, model, loss_fn, statis)
syst = trace.Sys(model, model_path, statis)
syst.sys_conclude("Classifier(4_categ)")
torch.save(model.state_dict(), reference)
"""

_LOAD = """
import json
import sys
import torch
from torch import nn
from epochal.compat import trace
from epochal.compat.trace import ModelRebuildError, Statistic
{model_code}
model, statis = trace.sys_load(sys.argv[1], sys.argv[2])
reference = torch.load(sys.argv[3], weights_only=True)
state = model.state_dict()
print(json.dumps({{
    "class": f"{{type(model).__module__}}.{{type(model).__qualname__}}",
    "arguments": [model.features, model.categories, model.hidden, model.activation, model.dropout],
    "same_weights": state.keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in state.items()),
    "statistic": [type(statis).__name__, statis.run_id, statis.train_loss, statis.test_accuracy],
    "trace_parts imported": "trace_parts" in sys.modules,
    "training": model.training,
}}))
"""


def _python(script: str, *args: object, cwd, store_dir) -> str:
    environment = {**os.environ, "EPOCHAL_DIR": str(store_dir),
                   "PYTHONPATH": os.pathsep.join([os.path.dirname(parts.__file__), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], check=False, cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("defined", ["in an imported module", "in the script"])
def test_the_readme_workflow_loads_model_and_statistics_in_another_process(tmp_path, store_dir, defined):
    """Train and save in one process; load with sys_load(model_path, statis_path) in another, as the README shows."""
    if defined == "in the script":  # the class lives in __main__ of both scripts
        model_code = "\n" + inspect.getsource(parts.Classifier)
    else:
        model_code = "from trace_parts import Classifier"
    model_path, statis_path, reference = tmp_path / "classifier.pth", tmp_path / "classifier", tmp_path / "ref.pt"
    saved = _python(_TRAIN.format(model_code=model_code), model_path, statis_path, reference,
                    cwd=tmp_path, store_dir=store_dir)
    assert "Model and statis saved. Adjustment times: 8" in saved

    loaded = json.loads(_python(_LOAD.format(model_code=model_code), model_path, statis_path, reference,
                                cwd=tmp_path, store_dir=store_dir))
    module = "__main__" if defined == "in the script" else "trace_parts"
    assert loaded["class"] == f"{module}.Classifier"
    assert loaded["arguments"] == [6, 4, 24, "tanh", 0.2]
    assert loaded["same_weights"] is True
    assert loaded["training"] is False  # saved after test_loop's model.eval()
    document = json.loads((statis_path / "statistic.json").read_text())
    assert loaded["statistic"] == ["Statistic", document["run_id"], document["train_loss"], document["test_accuracy"]]
    assert len(document["train_loss"]) == 8
    assert loaded["trace_parts imported"] is (defined == "in an imported module")


def _save_described(tmp_path, store_dir, model, **changes) -> tuple:
    """A model file written by Sys, its model description then changed as someone else's file might be."""
    statis = Statistic(tmp_path / "s", store=store_dir)
    statis.train_loss.append(1.0)
    path = tmp_path / "m.pth"
    trace.Sys(model, path, statis).sys_conclude("M")
    statis.close()
    if changes:
        payload = torch.load(path, weights_only=True)
        payload["extra"]["model"].update(changes)
        torch.save(payload, path)
    return path, tmp_path / "s"


def test_describe_model_captures_plain_constructor_arguments():
    assert trace.describe_model(nn.Linear(6, 4, bias=False))["kwargs"] == {"in_features": 6, "out_features": 4,
                                                                          "bias": None}
    described = trace.describe_model(parts.Classifier(3, hidden=5))
    assert (described["module"], described["qualname"]) == ("trace_parts", "Classifier")
    assert described["kwargs"] == {"features": 3, "categories": 4, "hidden": 5, "activation": "relu", "dropout": 0.2}

    class Configured(nn.Module):
        def __init__(self, config, width=3, /, depth=2, *args, **kwargs):
            super().__init__()
            self.config, self.depth = config, depth  # width is not kept

    assert trace.describe_model(Configured({"a": [1, 2.5, None, "x", (True,)]}, 4, 5)) | {"why": "-"} == {
        "format": "epochal.compat.trace/model", "module": __name__,
        "qualname": "test_describe_model_captures_plain_constructor_arguments.<locals>.Configured",
        "args": [{"a": [1, 2.5, None, "x", (True,)]}], "kwargs": {"depth": 5}, "why": "-", "training": True}
    refused = trace.describe_model(Configured(types.SimpleNamespace(a=1)))
    assert refused["args"] is None and refused["kwargs"] is None
    assert refused["why"] == ("the required argument 'config' of test_describe_model_captures_plain_constructor_"
                              "arguments.<locals>.Configured.__init__ is held as a types.SimpleNamespace, not a plain "
                              "value")
    assert trace.describe_model({"model": ConvM()})["why"] == "the model saved was a builtins.dict, not a torch.nn.Module"


def test_a_class_that_is_not_imported_is_refused_and_nothing_is_imported(tmp_path, store_dir, monkeypatch):
    # A module that leaves a mark when imported, on the import path, with a class the weights fit.
    module = f"trace_not_imported_{os.getpid()}"
    marker = tmp_path / "imported"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{module}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nfrom trace_parts import Classifier as Net\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    path, statis_path = _save_described(tmp_path, store_dir, parts.Classifier(6), module=module, qualname="Net")

    with pytest.raises(ModelRebuildError, match=rf"its class {module}\.Net is not imported in this process.*"
                                                r"never imports.*model=YourModel"):
        sys_load(path, statis_path, store=store_dir)
    assert not marker.exists() and module not in sys.modules

    # The same file once the user's script has imported that code: the class is found and rebuilt.
    try:
        __import__(module)
        assert marker.exists()
        model, _ = sys_load(path, statis_path, store=store_dir)
        assert type(model) is parts.Classifier and model.features == 6
    finally:
        sys.modules.pop(module, None)

    # A module that is imported but has no such name, and a class defined inside a function.
    _save_described(tmp_path, store_dir, parts.Classifier(6), qualname="Missing")
    with pytest.raises(ModelRebuildError, match="module trace_parts is, but has no Missing"):
        sys_load(path, statis_path, store=store_dir)
    _save_described(tmp_path, store_dir, parts.Classifier(6), qualname="make_data.<locals>.Classifier")
    with pytest.raises(ModelRebuildError, match="defined inside a function"):
        sys_load(path, statis_path, store=store_dir)


@pytest.mark.parametrize(("module", "qualname", "args", "kwargs"), [
    ("os", "system", ["touch {marker}"], {}),
    ("builtins", "eval", ["open({marker!r}, 'w')"], {}),
    ("builtins", "exec", ["open({marker!r}, 'w')"], {}),
    ("subprocess", "Popen", [], {"args": ["touch", "{marker}"]}),  # a class, but not an nn.Module
    ("torch.nn.modules.module", "Module.register_forward_hook", [], {}),
])
def test_a_file_naming_something_other_than_a_module_class_is_refused_and_never_called(
        tmp_path, store_dir, module, qualname, args, kwargs):
    marker = tmp_path / "called"
    fill = {"marker": str(marker)}
    path, statis_path = _save_described(
        tmp_path, store_dir, ConvM(), module=module, qualname=qualname, args=[a.format(**fill) for a in args],
        kwargs={k: [x.format(**fill) for x in v] for k, v in kwargs.items()})
    with pytest.raises(ModelRebuildError, match=rf"{module}\.{qualname} is a \w+, not a subclass of torch\.nn\.Module"):
        sys_load(path, statis_path, store=store_dir)
    assert not marker.exists()


def test_constructor_arguments_that_are_not_plain_values_are_refused(tmp_path, store_dir):
    class Configured(nn.Module):  # saved with an object as a required argument: not captured
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.layer = nn.Linear(2, 2)

    model = Configured(types.SimpleNamespace(width=2))
    path, statis_path = _save_described(tmp_path, store_dir, model)
    with pytest.raises(ModelRebuildError, match=r"constructor arguments of .*Configured were not captured when it "
                                                r"was saved: the required argument 'config'.*is held as a "
                                                r"types\.SimpleNamespace.*model=YourModel"):
        sys_load(path, statis_path, store=store_dir)
    loaded, _ = sys_load(path, statis_path, model=Configured(None), store=store_dir)  # the way that remains
    assert torch.equal(loaded.layer.weight, model.layer.weight)

    # A file whose arguments are not plain values (whoever wrote it), for a class that is imported.
    for changes in ({"kwargs": {"features": torch.ones(2)}}, {"kwargs": {"features": 6, "bad key": 1}},
                    {"args": {"features": 6}}, {"kwargs": {"features": [[[[[[[[[[[[[[[[[[6]]]]]]]]]]]]]]]]]]}}):
        _save_described(tmp_path, store_dir, parts.Classifier(6), **changes)
        with pytest.raises(ModelRebuildError, match="are not all plain values"):
            sys_load(path, statis_path, store=store_dir)


def test_weights_that_do_not_fit_the_rebuilt_model_are_refused(tmp_path, store_dir):
    path, statis_path = _save_described(tmp_path, store_dir, parts.Narrow(8))  # rebuilt as Narrow(), hidden=4
    with pytest.raises(ModelRebuildError, match=r"weights saved do not fit trace_parts\.Narrow\(\): layer\.weight "
                                                r"saved \(8, 3\), built \(4, 3\).*model=YourModel"):
        sys_load(path, statis_path, store=store_dir)
    assert sys_load(path, statis_path, model=parts.Narrow(8), store=store_dir)[0].layer.out_features == 8


def test_an_earlier_epochal_checkpoint_without_a_description_asks_for_the_model(tmp_path, store_dir):
    path, statis_path = _save_described(tmp_path, store_dir, ConvM())
    payload = torch.load(path, weights_only=True)
    payload["extra"] = {"name": "M"}  # what sys_conclude wrote before models were described
    torch.save(payload, path)
    with pytest.raises(ModelRebuildError, match="it does not say what model it holds"):
        sys_load(path, statis_path, store=store_dir)
    assert isinstance(sys_load(path, statis_path, model=ConvM(), store=store_dir)[0], ConvM)


def test_a_whole_pickled_model_from_the_original_loads_only_when_trusted(tmp_path, store_dir):
    statis = Statistic(tmp_path / "s", store=store_dir)
    statis.save()
    model = ConvM()
    torch.save(model, tmp_path / "whole.pth")  # what the original tool's sys_conclude wrote
    for given in ({}, {"model": ConvM()}):
        with pytest.raises(epochal.CheckpointError, match=r"whole\.pth holds pickled objects \(trace_parts\.ConvM\)"
                                                          r".*needs trusted=True"):
            sys_load(tmp_path / "whole.pth", tmp_path / "s", store=store_dir, **given)

    loaded, statis = sys_load(tmp_path / "whole.pth", tmp_path / "s", store=store_dir, trusted=True)
    assert type(loaded) is ConvM and isinstance(statis, Statistic)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
    into = ConvM()
    assert sys_load(tmp_path / "whole.pth", tmp_path / "s", model=into, store=store_dir, trusted=True)[0] is into
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), into.parameters()))

    # Without trust, a pickle that would run code is refused before anything in it runs.
    marker = tmp_path / "pwned"
    torch.save(_Exploit(marker), tmp_path / "evil.pth")
    with pytest.raises(epochal.CheckpointError, match=r"holds pickled objects \((posix|nt)\.system\).*trusted=True"):
        sys_load(tmp_path / "evil.pth", tmp_path / "s", store=store_dir)
    assert not marker.exists()


def test_huge_constructor_arguments_beside_small_weights_are_refused_before_memory_is_taken(tmp_path):
    # A crafted file naming torch.nn.Linear(10**6, 10**6) (4 TB) beside a small layer's weights:
    # built on the meta device first, it is refused without allocating.
    from epochal import checkpoint
    from epochal.compat.trace import describe_model

    small = torch.nn.Linear(4, 2)
    description = describe_model(small)
    description["kwargs"].update({"in_features": 10**6, "out_features": 10**6})
    payload = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "run_id": "x", "step": 0, "epoch": 0,
               "created": 0.0, "metric": None, "models": {"model": small.state_dict()}, "optimizers": {},
               "schedulers": {}, "scaler": None, "extra": {"model": description}, "rng": checkpoint.rng_state()}
    path = tmp_path / "crafted.pth"
    checkpoint.write_atomic(path, payload)
    statis = trace.Statistic(tmp_path / "stats")
    statis.save()
    with pytest.raises(ModelRebuildError, match="do not fit"):
        trace.sys_load(path, tmp_path / "stats")
