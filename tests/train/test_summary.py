"""model_summary: rows per module, output shapes from one forward pass, exact parameter totals."""

import re

import pytest
import torch
from torch import nn

from epochal.train.summary import model_summary


def _table(text):
    """(header cells, body rows as cell lists, totals dict) of a summary."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"="}]
    assert len(rules) == 4 and rules[0] == 0 and rules[-1] == len(lines) - 1
    header = re.split(r"\s{2,}", lines[1].strip())
    body = lines[rules[1] + 1 : rules[2]]
    totals = dict(line.split(": ") for line in lines[rules[2] + 1 : rules[3]])
    return header, body, totals


def _cells(line):
    return re.split(r"\s{2,}", line.strip())


def _row(body, name):
    """The cells of the first row whose name is ``name`` (names are indented by depth)."""
    for line in body:
        cells = _cells(line)
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in {body}")


def _indent(body, name):
    line = next(line for line in body if _cells(line)[0] == name)
    return len(line) - len(line.lstrip())


def _check_totals(totals, model):
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    assert totals["Total params"] == f"{total:,}"
    assert totals["Trainable params"] == f"{trainable:,}"
    assert totals["Non-trainable params"] == f"{total - trainable:,}"
    assert totals["Params size (MB)"] == f"{sum(p.numel() * p.element_size() for p in params) / 1e6:.2f}"


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x))


def test_mlp_rows_shapes_and_params():
    model = MLP()
    header, body, totals = _table(model_summary(model, torch.zeros(8, 20), depth=2))
    assert header == ["Layer", "Type", "Output shape", "Params"]
    assert [_cells(line)[0] for line in body] == ["(root)", "body", "0", "1", "2", "3", "head"]
    assert _row(body, "(root)") == ["(root)", "MLP", "[8, 10]", "0"]
    assert _row(body, "body") == ["body", "Sequential", "[8, 64]", "0"]  # its own; its children are shown
    assert _row(body, "0") == ["0", "Linear", "[8, 64]", "1,344"]
    assert _row(body, "head") == ["head", "Linear", "[8, 10]", "650"]
    assert _indent(body, "(root)") == 0 and _indent(body, "body") == 2 and _indent(body, "0") == 4
    _check_totals(totals, model)
    assert totals["Total params"] == "6,154"


def test_at_the_depth_limit_a_module_counts_its_children():
    model = MLP()
    _, body, _ = _table(model_summary(model, torch.zeros(2, 20), depth=1))
    assert [_cells(line)[0] for line in body] == ["(root)", "body", "head"]
    assert _row(body, "body") == ["body", "Sequential", "[2, 64]", f"{20 * 64 + 64 + 64 * 64 + 64:,}"]
    _, body, _ = _table(model_summary(model, depth=0))
    assert [_cells(line) for line in body] == [["(root)", "MLP", "6,154"]]


def test_without_an_input_there_is_no_shape_column():
    header, body, _ = _table(model_summary(MLP()))
    assert header == ["Layer", "Type", "Params"]
    assert _row(body, "head") == ["head", "Linear", "650"]


def test_cnn_with_frozen_layers_and_buffers():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )
    for p in model[0].parameters():
        p.requires_grad_(False)
    model.train()
    running_mean = model[1].running_mean.clone()
    _, body, totals = _table(model_summary(model, torch.randn(4, 3, 32, 32)))
    assert _row(body, "0")[1:] == ["Conv2d", "[4, 8, 32, 32]", "224"]
    assert _row(body, "3")[1:] == ["MaxPool2d", "[4, 8, 16, 16]", "0"]
    assert _row(body, "4")[1:] == ["Conv2d", "[4, 16, 14, 14]", "1,168"]
    assert _row(body, "6")[1:] == ["Flatten", "[4, 16]", "0"]
    _check_totals(totals, model)
    assert totals["Non-trainable params"] == "224"
    # The pass ran in eval mode (no BatchNorm update) and left the model training.
    assert torch.equal(model[1].running_mean, running_mean)
    assert model.training and all(m.training for m in model.modules())


def test_transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    model.train()
    text = model_summary(model, torch.randn(3, 7, 32), depth=3)
    _, body, totals = _table(text)
    assert _row(body, "(root)") == ["(root)", "TransformerEncoder", "[3, 7, 32]", "0"]
    assert _row(body, "0")[1:] == ["TransformerEncoderLayer", "[3, 7, 32]", "0"]
    # Attention returns (output, None): the None is shown as such. It counts its out_proj's params.
    assert _row(body, "self_attn")[1:] == ["MultiheadAttention", "[3, 7, 32], None", f"{4 * (32 * 32 + 32):,}"]
    assert _row(body, "linear1")[1:] == ["Linear", "[3, 7, 64]", f"{32 * 64 + 64:,}"]
    _check_totals(totals, model)
    assert model.training and model.layers[0].self_attn.training


def test_full_transformer_with_two_inputs():
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=32, batch_first=True)
    _, body, totals = _table(model_summary(model, (torch.randn(2, 5, 16), torch.randn(2, 3, 16))))
    assert _row(body, "(root)")[1:] == ["Transformer", "[2, 3, 16]", "0"]
    assert _row(body, "encoder")[1:] == ["TransformerEncoder", "[2, 5, 16]", "0"]
    assert _row(body, "decoder")[1:] == ["TransformerDecoder", "[2, 3, 16]", "0"]
    _check_totals(totals, model)


class TwoInputs(nn.Module):
    """Two inputs, a dict output, a submodule returning None and one returning a custom object."""

    class Note:
        pass

    class Silent(nn.Module):
        def forward(self, x):
            return None

    class Noter(nn.Module):
        def forward(self, x):
            return TwoInputs.Note()

    def __init__(self):
        super().__init__()
        self.image = nn.Linear(10, 4)
        self.text = nn.Embedding(100, 4)
        self.silent = self.Silent()
        self.noter = self.Noter()
        self.unused = nn.Linear(3, 3)

    def forward(self, image, tokens):
        self.silent(image)
        self.noter(image)
        return {"image": self.image(image), "text": self.text(tokens).mean(1), "extra": (image, [tokens])}


def test_several_inputs_and_odd_outputs():
    model = TwoInputs()
    _, body, totals = _table(
        model_summary(model, (torch.zeros(6, 10), torch.zeros(6, 9, dtype=torch.long)))
    )
    assert _row(body, "(root)")[2] == "{image: [6, 4], text: [6, 4], extra: ([6, 10], ([6, 9]))}"[:45] + "..."
    assert _row(body, "image")[1:] == ["Linear", "[6, 4]", "44"]
    assert _row(body, "text")[1:] == ["Embedding", "[6, 9, 4]", "400"]
    assert _row(body, "silent")[1:] == ["Silent", "-", "0"]
    assert _row(body, "noter")[1:] == ["Noter", "-", "0"]
    assert _row(body, "unused")[1:] == ["Linear", "-", "12"]  # never called: no shape
    _check_totals(totals, model)


def test_a_dict_input_is_passed_as_keywords():
    model = TwoInputs()
    inputs = {"image": torch.zeros(2, 10), "tokens": torch.zeros(2, 3, dtype=torch.long)}
    _, body, _ = _table(model_summary(model, inputs))
    assert _row(body, "text")[2] == "[2, 3, 4]"


def test_shared_parameters_are_counted_once_in_the_totals():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.out = nn.Linear(8, 50, bias=False)
            self.out.weight = self.embed.weight

        def forward(self, tokens):
            return self.out(self.embed(tokens))

    model = Tied()
    _, body, totals = _table(model_summary(model, torch.zeros(2, 4, dtype=torch.long)))
    assert _row(body, "embed")[-1] == "400" and _row(body, "out")[-1] == "400"
    assert _row(body, "out")[2] == "[2, 4, 50]"
    _check_totals(totals, model)
    assert totals["Total params"] == "400"


def test_a_failing_forward_leaves_the_model_as_it_was():
    model = MLP().train()
    with pytest.raises(RuntimeError):
        model_summary(model, torch.zeros(8, 3))  # wrong width
    assert model.training and not model._forward_hooks and not model.head._forward_hooks


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        model_summary(MLP(), depth=-1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        model_summary("not a model")
