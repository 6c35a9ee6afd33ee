"""The hyperparameters of a TensorBoard run, as the TensorBoard import reads them.

Two sources hold them:

- the hparams plugin's data in the event files, written by ``SummaryWriter.add_hparams`` and by
  Lightning's ``TensorBoardLogger``: a serialized ``HParamsPluginData`` per summary value whose
  ``plugin_data.plugin_name`` is ``"hparams"``. Its ``session_start_info.hparams`` maps each name to a
  ``google.protobuf.Value``, read here as plain Python: a number as a float (the plugin keeps every
  number as a double, so ``32`` reads ``32.0``), text, a bool, None, lists and dicts. Its
  ``experiment.metric_infos`` name the metrics that ``add_hparams`` logged beside them;
- ``hparams.yaml``, which Lightning writes next to its event file: the same hyperparameters with
  their nesting and types kept (the plugin's copy is flattened to ``"optim/lr"`` names, and what
  it cannot hold is turned into text). It is read with PyYAML's safe loader, which constructs no
  Python object: the tags ``yaml.dump`` writes for Python values are read as plain data (a tuple as
  a list, ``!!python/name:x.y`` as the text ``x.y``, any other object as the text of its tag and
  data).

A source that cannot be read (a damaged plugin value, YAML that does not parse or is not a mapping
of names to values, values the store cannot keep) is left out with an :class:`EpochalWarning`
naming its file; the run's scalars are imported all the same.

Examples:
    >>> yaml_hparams(Path("lightning_logs/version_0/hparams.yaml"))
    {'lr': 0.1, 'optim': {'momentum': 0.9, 'name': 'sgd'}}
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from epochal.checks import to_config
from epochal.errors import EpochalWarning

#: The ``plugin_data.plugin_name`` of TensorBoard's hparams plugin.
PLUGIN_NAME = "hparams"

#: The file Lightning's ``TensorBoardLogger`` writes the hyperparameters to, beside its event file.
YAML_NAME = "hparams.yaml"


class PluginHParams(NamedTuple):
    """What one hparams plugin value holds."""

    hparams: dict[str, Any]  # a session_start_info's hyperparameters: name -> plain value; else empty
    metrics: tuple[str, ...]  # an experiment's metric tags; else empty
    session: bool  # whether it is a session_start_info (a run's hyperparameters)


def plugin_hparams(path: Path, tag: str, content: bytes) -> PluginHParams | None:
    """The hyperparameters or metric names in one hparams plugin value of the event file ``path``.

    None, with a warning naming the file, when ``content`` is not an ``HParamsPluginData``.
    """
    from google.protobuf.message import DecodeError
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    try:
        data = HParamsPluginData.FromString(content)
    except DecodeError as exc:
        _warn(f"event file '{path}': the hparams plugin data of {tag!r} cannot be read ({exc}); its "
              "hyperparameters are left out of the run's config, its scalars are imported")
        return None
    kind = data.WhichOneof("data")
    if kind == "session_start_info":
        hparams = {name: _plain(value) for name, value in sorted(data.session_start_info.hparams.items())}
        return PluginHParams(hparams, (), True)
    if kind == "experiment":
        return PluginHParams({}, tuple(info.name.tag for info in data.experiment.metric_infos), False)
    return PluginHParams({}, (), False)


def yaml_hparams(path: Path) -> dict[str, Any] | None:
    """The hyperparameters in Lightning's ``hparams.yaml`` at ``path``, nested as written; an empty
    file holds none. None, with a warning naming the file, when it cannot be read."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_HParamsLoader)  # a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        _warn(f"'{path}' cannot be read as YAML ({problem[:300]}); the run's config is left empty, its scalars "
              "are imported")
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        _warn(f"'{path}' holds {type(data).__name__} {data!r:.60}, not a mapping of names to values; the run's "
              "config is left empty, its scalars are imported")
        return None
    return storable(data, path)


def storable(hparams: dict[str, Any], source: Path) -> dict[str, Any] | None:
    """``hparams`` as the store keeps a config; None, with a warning naming ``source``, when it cannot."""
    try:
        return to_config(hparams)
    except ValueError as exc:
        _warn(f"the hyperparameters in '{source}' cannot be stored ({exc}); they are left out of the run's "
              "config, its scalars are imported")
        return None


def _plain(value: Any) -> Any:
    """A ``google.protobuf.Value`` as plain Python."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    if kind == "struct_value":
        return {name: _plain(item) for name, item in value.struct_value.fields.items()}
    return None  # null_value, or nothing set


class _HParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading the Python tags of ``yaml.dump`` as plain data."""


def _python_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    return loader.construct_sequence(node, deep=True)


def _python_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    """Text for a Python object's tag: its name for ``python/name:`` and ``python/module:``, else the tag
    and its data. Nothing is imported or called."""
    kind, _, name = suffix.partition(":")
    if kind in ("name", "module") and name:
        return name
    if isinstance(node, yaml.MappingNode):
        data: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        data = loader.construct_sequence(node, deep=True)
    else:
        data = loader.construct_scalar(node)
    return f"!!python/{suffix} {data!r}"


_HParamsLoader.add_constructor("tag:yaml.org,2002:python/tuple", _python_tuple)
_HParamsLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_tagged)


def _warn(message: str) -> None:
    warnings.warn(message, EpochalWarning, stacklevel=4)
