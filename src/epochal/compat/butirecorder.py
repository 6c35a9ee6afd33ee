"""buti-recorder's ``Recorder``, over epochal.

A script written for buti-recorder moves over by changing one import line::

    from butirecorder import Recorder                   # before
    from epochal.compat.butirecorder import Recorder    # after

``checkpoint(data)`` keeps any JSON value against the step in progress (steps count from 1, as
the tool's README shows); ``save_checkpoints()`` writes ``<save_path>/<recorder_name>.json``::

    {"id": ..., "recorder_name": ..., "save_path": ..., "mode": "torch", "save_mode": "state_dict",
     "model_names": [...], "desp": ..., "steps": 10, "epochs": 0, "epochal_run": "<run id>",
     "data": {"accuracy": [[1, 0.0], [2, 0.1], ...], "QQ": [[1, true], ...]}}

``save_models()`` writes ``<recorder_name>_<model>.pkl`` beside it (a state dict, or the whole
model with ``save_mode="model"``; for Keras ``.weights.h5`` or ``.keras``), and ``load(json_fp)``
reads them back into ``models``. It also reads the JSON the original tool wrote (a JSON string
holding the JSON). Every file is written to a temporary name and renamed into place.

Each recorder is also an epochal run (project ``butirecorder``, named after the recorder): the
numbers of each step (bools as 0/1; strings and lists stay in the JSON only) are logged when the
step ends, so ``epochal ls`` lists it, and torch models saved by ``save_models()`` are recorded as
the run's weights checkpoint. After ``load()`` the same run continues when it is in the store.
``mode="keras"`` needs Keras 3, run on its torch backend (``pip install epochal[keras]``);
TensorFlow is not supported.
"""

from __future__ import annotations

import atexit
import copy
import json
import numbers
import os
import shutil
import sys
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import epochal
from epochal.atomic import atomic_file, atomic_write
from epochal.checkpoint import write_atomic
from epochal.retention import Retention
from epochal.checks import MAX_KEY_LENGTH
from epochal.errors import CheckpointError, RunNotFoundError, RunStateError
from epochal.logs import logger

MODES = ("torch", "keras", "tf")
SAVE_MODES = ("state_dict", "model")
PROJECT = "butirecorder"
_REQUIRED = ("recorder_name", "steps", "epochs", "data")
_JSON_SCALARS = (float, int, bool, str, type(None))
_NUMBERS = (float, int, bool)


class Recorder:
    """Records values per step into a JSON file and an epochal run, and saves and loads models.

    Examples:
        >>> recorder = Recorder(mode="torch", save_mode="state_dict", save_path="out", recorder_name="cnn")
        >>> recorder.set_models({"CNN_1": model})
        >>> recorder.checkpoint({"loss": 0.3, "accuracy": 0.9})
        >>> recorder.step()
        >>> recorder.save_checkpoints(); recorder.save_models()
        >>> models = Recorder(mode="torch", save_mode="state_dict", models={"CNN_1": model}).load("out/cnn.json")
    """

    def __init__(
        self,
        mode: str,
        save_mode: str,
        save_path: str | os.PathLike | None = None,
        recorder_name: str | None = None,
        models: Mapping[str, Any] | None = None,
        desp: str = "",
        *,
        project: str = PROJECT,
        store: str | os.PathLike | epochal.Store | None = None,
    ):
        """
        Args:
            mode: 'torch' or 'keras' ('tf' is refused).
            save_mode: 'state_dict' (save the weights) or 'model' (save the whole model).
            save_path: the folder of the JSON file and the model files.
            recorder_name: names the JSON file and, with each model's name, the model files.
            models: name -> model.
            desp: a description, kept in the JSON and as the run's description.
            project, store: where the epochal run goes (default: project 'butirecorder' in the
                default store).
        """
        if mode == "tf":
            raise ValueError("Recorder(mode='tf'): TensorFlow is not supported; use mode='torch', or mode='keras' "
                             "(Keras 3 on its torch backend)")
        _choice("mode", mode, MODES)
        _choice("save_mode", save_mode, SAVE_MODES)
        if mode == "keras":
            _keras()
        if recorder_name is not None and not isinstance(recorder_name, str):
            raise TypeError(f"Recorder: recorder_name is a str or None, got {type(recorder_name).__name__}")
        if save_path is not None and not isinstance(save_path, (str, os.PathLike)):
            raise TypeError(f"Recorder: save_path is a path or None, got {type(save_path).__name__}")
        self.id = uuid.uuid1().hex
        self.mode = mode
        self.save_mode = save_mode
        self.save_path = None if save_path is None else os.fspath(save_path)
        self.recorder_name = recorder_name
        self.desp = desp
        self.set_models({} if models is None else models)
        self.data: dict[str, list[list[Any]]] = {}
        self._steps = 0
        self._epochs = 0
        self._project = project
        self._store = store
        self._run: epochal.Run | None = None
        self._resume_id: str | None = None  # the run named by a loaded JSON file
        self._replay: int | None = None  # log loaded points up to this step into a new run, if the old is gone
        self._pending: dict[str, Any] = {}  # the numbers of the step in progress, logged when it ends
        _recorders.add(self)

    def __repr__(self) -> str:
        return f"Recorder(mode={self.mode!r}, recorder_name={self.recorder_name!r}, steps={self._steps})"

    # -- counters ------------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Steps completed; ``checkpoint`` records at ``steps + 1``, the step in progress."""
        return self._steps

    @property
    def epochs(self) -> int:
        """Epochs completed."""
        return self._epochs

    def step(self) -> int:
        """End the step in progress: its numbers go to the run, and ``steps`` grows by one."""
        if self._pending:
            self._log_pending()
        self._steps += 1
        if self._run is not None:
            self._run.step()
        return self._steps

    def epoch(self) -> int:
        """End an epoch: ``epochs`` grows by one."""
        if self._pending:
            self._log_pending()
        self._epochs += 1
        if self._run is not None:
            self._run.epoch()
        return self._epochs

    def get_steps(self) -> int:
        return self._steps

    def get_epochs(self) -> int:
        return self._epochs

    # -- recording -----------------------------------------------------------------------------

    def set_models(self, models: Mapping[str, Any]) -> None:
        """Set the models that ``save_models`` saves and ``load`` loads into, by name."""
        if not isinstance(models, Mapping):
            raise TypeError(f"Recorder.set_models: models is a dict of name -> model, got {type(models).__name__}")
        for name in models:
            if not isinstance(name, str) or not name:
                raise TypeError(f"Recorder.set_models: model names are non-empty strings, got {name!r}")
        self.models = dict(models)
        self.model_names = list(self.models) or None

    def checkpoint(self, data: Mapping[str, Any]) -> None:
        """Record each value of ``data`` at the step in progress; a key given again in that step is replaced.

        Values are anything JSON holds; NumPy values and tensors are kept as numbers or lists.
        Nothing of a refused call is recorded.

        Raises:
            TypeError: a key is not a string, or a value cannot be written as JSON.
            ValueError: a key is empty or longer than 255 characters.
        """
        known = self.data
        converted = {}
        for key, value in data.items():
            if key not in known:
                _check_key(key)
            converted[key] = value if type(value) in _JSON_SCALARS else _plain(key, value)
        step = self._steps + 1
        pending = self._pending
        for key, value in converted.items():
            series = known.get(key)
            if series is None:
                known[key] = [[step, value]]
            elif series[-1][0] == step:
                series[-1][1] = value
            else:
                series.append([step, value])
            if type(value) in _NUMBERS or _is_tensor(value):
                pending[key] = value
            else:
                pending.pop(key, None)

    def save_checkpoints(self) -> Path:
        """Write everything recorded to ``<save_path>/<recorder_name>.json`` (atomically) and return its path."""
        target = self._file("save_checkpoints", ".json")
        run = self._ensure_run()
        output = {
            "id": self.id, "recorder_name": self.recorder_name, "save_path": self.save_path, "mode": self.mode,
            "save_mode": self.save_mode, "model_names": self.model_names, "desp": self.desp,
            "steps": self._steps, "epochs": self._epochs, "epochal_run": run.id, "data": self.data,
        }
        text = json.dumps(output, default=_json_default)
        atomic_write(target, text)
        return target

    def save_models(self) -> list[Path]:
        """Save every model of ``models`` beside the JSON file, the way ``save_mode`` says; return the paths."""
        if not self.models:
            raise ValueError("Recorder.save_models: no models to save; call set_models({'name': model}) first")
        self._file("save_models", ".json")  # checks recorder_name and save_path
        paths = []
        for name, model in self.models.items():
            target = self._model_file(Path(self.save_path), name)
            if self.mode == "keras":
                _keras_save(model, target, self.save_mode)
            else:
                write_atomic(target, model.state_dict() if self.save_mode == "state_dict" else model)
            paths.append(target)
        if self.mode == "torch":
            run = self._ensure_run()
            run.save_checkpoint(models=self.models, kind="weights", retention=Retention(last=1, best=0))
        return paths

    # -- loading -------------------------------------------------------------------------------

    def load(self, json_fp: str | os.PathLike) -> dict[str, Any]:
        """Load the recorder's data and counters from ``json_fp`` and each model of ``models`` from its file.

        ``mode``, ``save_mode`` and ``models`` must be set first. Model files are looked for in
        ``save_path`` when it is set, else in the folder the JSON names (or, when that folder is
        gone, the JSON file's own folder). Nothing changes when any file is missing or damaged.

        Returns:
            the models by name: the same objects loaded in place for 'state_dict', new ones for 'model'.

        Raises:
            CheckpointError: a file is missing, is not what the recorder writes, or does not fit the models.
        """
        path = Path(json_fp)
        if not self.models:
            raise ValueError(f"Recorder.load({str(path)!r}): set the models to load into first (models= or set_models)")
        saved = _read_json(path)
        if saved["mode"] is not None and saved["mode"] != self.mode:
            raise CheckpointError(f"{path}: it was recorded with mode={saved['mode']!r}, this recorder has mode={self.mode!r}")
        if saved.get("save_mode") not in (None, self.save_mode):
            raise CheckpointError(
                f"{path}: its models were saved with save_mode={saved['save_mode']!r}, this recorder has "
                f"save_mode={self.save_mode!r}"
            )
        missing = [n for n in self.models if saved["model_names"] is not None and n not in saved["model_names"]]
        if missing:
            raise CheckpointError(f"{path}: no model named {missing[0]!r}; it holds {saved['model_names']}")
        folder = self._model_folder(path, saved)
        name = saved["recorder_name"]
        files = {n: self._model_file(folder, n, name) for n in self.models}
        for model_name, file in files.items():
            if not file.is_file():
                raise CheckpointError(f"{path}: the file of model {model_name!r}, {file}, does not exist")
        if self.mode == "keras":
            models = _keras_load(self.models, files, self.save_mode)
        else:
            models = _torch_load(self.models, files, self.save_mode)

        self.close()
        self.models = models
        self.id = saved.get("id") or self.id
        self.recorder_name = name
        self.desp = saved.get("desp", "")
        self.model_names = saved["model_names"]
        if self.save_path is None:
            self.save_path = str(folder)
        self.data = saved["data"]
        self._steps, self._epochs = saved["steps"], saved["epochs"]
        self._pending = {}
        self._resume_id = saved.get("epochal_run")
        self._replay = self._steps
        return self.models

    def close(self) -> None:
        """Log the numbers of the step in progress and finish the epochal run."""
        if self._pending:
            self._log_pending()
        if self._run is not None:
            self._run.finish()
            self._run = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._pending:
            self._log_pending()
        if self._run is not None:
            self._run.__exit__(exc_type, *exc)
            self._run = None

    # -- helpers -------------------------------------------------------------------------------

    def _log_pending(self) -> None:
        values, self._pending = self._pending, {}
        self._ensure_run().log(values, step=self._steps + 1, epoch=self._epochs)

    def _ensure_run(self) -> epochal.Run:
        if self._run is not None:
            return self._run
        run = None
        if self._resume_id:
            try:
                run = epochal.resume(self._resume_id, store=self._store)
            except (RunNotFoundError, RunStateError):
                run = None
        if run is None:
            run = epochal.start(
                self._project, self.recorder_name, description=str(self.desp or ""), tags=("butirecorder",),
                store=self._store,
                config={"mode": self.mode, "save_mode": self.save_mode, "save_path": self.save_path,
                        "models": list(self.models)},
            )
            if self._replay is not None:
                _replay(run, self.data, self._replay)
        self._replay = None
        run.step(max(0, self._steps - run.steps))
        run.epoch(max(0, self._epochs - run.epochs))
        self._run = run
        return run

    def _file(self, method: str, suffix: str) -> Path:
        for what in ("recorder_name", "save_path"):
            if getattr(self, what) is None:
                raise ValueError(f"Recorder.{method}() needs {what}; give Recorder({what}=...) or set recorder.{what}")
        return Path(self.save_path) / f"{self.recorder_name}{suffix}"

    def _model_file(self, folder: Path, model_name: str, recorder_name: str | None = None) -> Path:
        stem = f"{recorder_name or self.recorder_name}_{model_name}"
        if self.mode == "keras":
            return folder / (stem + (".weights.h5" if self.save_mode == "state_dict" else ".keras"))
        return folder / f"{stem}.pkl"

    def _model_folder(self, json_path: Path, saved: Mapping[str, Any]) -> Path:
        if self.save_path is not None:
            return Path(self.save_path)
        recorded = saved.get("save_path")
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
        return json_path.parent


# -- values --------------------------------------------------------------------------------------


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"Recorder.checkpoint: keys are strings, got {key!r} ({type(key).__name__})")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"Recorder.checkpoint: a key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}: {key[:60]!r}")


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _plain(key: str, value: Any) -> Any:
    """A value as the JSON file keeps it. A one-number tensor on a device stays a tensor (read at save)."""
    if _is_tensor(value):
        if value.numel() == 1 and not value.is_complex():
            return value.item() if value.device.type == "cpu" else value.detach().clone().reshape(())
        return value.detach().cpu().tolist()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Recorder.checkpoint: value for {key!r} is {type(value).__name__} ({value!r:.60}), which JSON cannot "
            "hold; give numbers, bools, strings, None, lists or dicts of them, arrays or tensors"
        ) from exc


def _json_default(value: Any) -> Any:
    if _is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _replay(run: epochal.Run, data: Mapping[str, list], last_step: int) -> None:
    """Log the numbers of loaded data (up to ``last_step``) into a fresh run, one call per step."""
    by_step: dict[int, dict[str, float]] = {}
    for key, points in data.items():
        for step, value in points:
            if type(value) in _NUMBERS and type(step) is int and 0 <= step <= last_step:
                by_step.setdefault(step, {})[key] = value
    for step in sorted(by_step):
        run.log(by_step[step], step=step, epoch=0)


# -- files ---------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    """The recorder JSON at ``path``: plain, or double-encoded as the original tool wrote it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such recorder JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read it: {exc}") from exc
    try:
        saved = json.loads(text)
        if isinstance(saved, str):  # the original tool json.dump-ed a JSON string
            saved = json.loads(saved)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: expected a JSON object with {', '.join(_REQUIRED)}, got {type(saved).__name__}")
    missing = [key for key in _REQUIRED if key not in saved]
    if missing:
        raise CheckpointError(f"{path}: not a recorder file, it lacks {', '.join(repr(k) for k in missing)}")
    for key in ("steps", "epochs"):
        if type(saved[key]) is not int or saved[key] < 0:
            raise CheckpointError(f"{path}: {key!r} must be a count (an int >= 0), got {saved[key]!r}")
    data = saved["data"]
    if not isinstance(data, dict) or not all(
        isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 for p in points)
        for points in data.values()
    ):
        raise CheckpointError(f"{path}: 'data' must map each key to a list of [step, value] pairs")
    saved.setdefault("mode", None)
    saved.setdefault("model_names", None)
    return saved


def _torch_load(models: Mapping[str, Any], files: Mapping[str, Path], save_mode: str) -> dict[str, Any]:
    import torch

    loaded = {}
    for name, file in files.items():
        try:
            if save_mode == "state_dict":
                loaded[name] = torch.load(file, map_location="cpu", weights_only=True)
            else:  # a pickled model: load only files you trust, as with torch.load itself
                loaded[name] = torch.load(file, weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{file}: cannot load model {name!r}: {exc}") from exc
        wanted = Mapping if save_mode == "state_dict" else torch.nn.Module
        if not isinstance(loaded[name], wanted):
            raise CheckpointError(
                f"{file}: holds a {type(loaded[name]).__name__}, not a {wanted.__name__}; "
                f"was it saved with another save_mode than {save_mode!r}?"
            )
    if save_mode == "model":
        return {**models, **loaded}
    backups = {name: copy.deepcopy(models[name].state_dict()) for name in loaded}
    done = []
    try:
        for name, state in loaded.items():
            done.append(name)
            models[name].load_state_dict(state)
    except Exception as exc:
        for name in done:
            models[name].load_state_dict(backups[name])
        raise CheckpointError(f"{files[name]}: does not fit model {name!r}: {exc}") from exc
    return dict(models)


# -- Keras 3 on torch ----------------------------------------------------------------------------


def _keras():
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as exc:
        raise ImportError(
            "Recorder(mode='keras') needs Keras 3 (run on its torch backend): pip install epochal[keras]"
        ) from exc
    version = getattr(keras, "__version__", "0")
    if int(version.split(".")[0]) < 3 or keras.backend.backend() != "torch":
        raise ImportError(
            f"Recorder(mode='keras') needs Keras 3 on its torch backend, found Keras {version} on "
            f"{keras.backend.backend()!r}; import it with KERAS_BACKEND=torch (pip install epochal[keras])"
        )
    return keras


def _keras_save(model: Any, target: Path, save_mode: str) -> None:
    suffix = ".weights.h5" if save_mode == "state_dict" else ".keras"
    # Keras writes to a path and picks the format from its ending: a temporary one with the same ending.
    with atomic_file(target) as file:
        temporary = Path(file.name).with_name(Path(file.name).name + suffix)
        try:
            (model.save_weights if save_mode == "state_dict" else model.save)(str(temporary))
            with open(temporary, "rb") as saved:
                shutil.copyfileobj(saved, file)
        finally:
            temporary.unlink(missing_ok=True)


def _keras_load(models: Mapping[str, Any], files: Mapping[str, Path], save_mode: str) -> dict[str, Any]:
    keras = _keras()
    if save_mode == "model":
        loaded = {}
        for name, file in files.items():
            try:
                loaded[name] = keras.saving.load_model(str(file))
            except Exception as exc:
                raise CheckpointError(f"{file}: cannot load model {name!r}: {exc}") from exc
        return {**models, **loaded}
    backups = {name: models[name].get_weights() for name in files}
    done = []
    try:
        for name, file in files.items():
            done.append(name)
            models[name].load_weights(str(file))
    except Exception as exc:
        for name in done:
            models[name].set_weights(backups[name])
        raise CheckpointError(f"{files[name]}: cannot load the weights of model {name!r}: {exc}") from exc
    return dict(models)


def _choice(what: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"Recorder: {what} is one of {', '.join(map(repr, options))}, got {value!r}")


# -- numbers of a step still in progress when the interpreter exits --------------------------------

_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _log_open_steps() -> None:
    for recorder in list(_recorders):
        if recorder._pending:
            try:
                recorder._log_pending()
            except Exception as exc:  # noqa: BLE001 (the interpreter is going down; say why and go on)
                logger.warning("butirecorder %r: %s", recorder.recorder_name, exc)


# Registered after epochal.run's own handler, so it runs first: these points are logged before runs finish.
atexit.register(_log_open_steps)
