"""The pieces the trace seed's README leaves out: a tiny 4-class data set, a model, train and test loops."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """64 training and 32 test points in 4 classes; the training loader shuffles with the global RNG."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 6, generator=g) * 2
    labels = torch.randint(0, 4, (96,), generator=g)
    points = centers[labels] + torch.randn(96, 6, generator=g)
    train = TensorDataset(points[:64], labels[:64])
    test = TensorDataset(points[64:], labels[64:])
    return DataLoader(train, batch_size=16, shuffle=True), DataLoader(test, batch_size=16)


class ConvM(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


def train_loop(train_ds, model, loss_fn, optimizer, statis):
    model.train()
    for x, y in train_ds:
        output = model(x)
        loss = loss_fn(output, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        statis.train_loss.append(loss.item())
        statis.train_accuracy.append((output.argmax(1) == y).float().mean().item())


def test_loop(test_ds, model, loss_fn, statis):
    model.eval()
    size, test_loss, correct = len(test_ds.dataset), 0.0, 0.0
    with torch.no_grad():
        for x, y in test_ds:
            output = model(x)
            test_loss += loss_fn(output, y).item()
            correct += (output.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= len(test_ds)
    accuracy = correct / size
    statis.test_loss.append(test_loss)
    statis.test_accuracy.append(accuracy)


class Classifier(nn.Module):
    """A model with constructor arguments, kept as attributes of the same names (what sys_load rebuilds from)."""

    def __init__(self, features: int, categories: int = 4, hidden: int = 16, activation: str = "relu",
                 dropout: float = 0.2):
        super().__init__()
        self.features, self.categories, self.hidden = features, categories, hidden
        self.activation, self.dropout = activation, dropout
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.net = nn.Sequential(nn.Linear(features, hidden), act(), nn.Dropout(dropout), nn.Linear(hidden, categories))

    def forward(self, x):
        return self.net(x)


class Narrow(nn.Module):
    """Keeps its option only inside a layer, under another name: sys_load rebuilds it with the default."""

    def __init__(self, hidden: int = 4):
        super().__init__()
        self.layer = nn.Linear(3, hidden)
