"""The Trainer on a CUDA device: no host-device synchronisation per training step. Skipped without CUDA."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

STEPS = 200


class _CountSyncs(epochal.Callback):
    """Counts the synchronisations torch reports (sync debug mode 'warn') during each training pass."""

    def __init__(self) -> None:
        self.syncs: list[int] = []
        self._caught: warnings.catch_warnings | None = None
        self._seen: list = []

    def on_stage_start(self, trainer, stage, batches) -> None:
        if stage == "train":
            self._caught = warnings.catch_warnings(record=True)
            self._seen = self._caught.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_stage_end(self, trainer, result) -> None:
        # Called after the pass's sums were read (the one wait per pass): counted too.
        if self._caught is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._caught.__exit__(None, None, None)
            self.syncs.append(sum("synchroniz" in str(w.message) for w in self._seen))
            self._caught = None


@pytest.mark.parametrize("defaults", [False, True], ids=["bare", "default-callbacks"])
def test_a_training_pass_waits_for_the_device_a_few_times_not_once_per_step(store_dir, defaults):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * 64, 32, generator=generator).cuda()
    y = torch.randint(0, 10, (STEPS * 64,), generator=generator).cuda()
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    counter = _CountSyncs()
    trainer = epochal.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.05), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=64), metrics=["accuracy"], max_epochs=2,
        device="cuda", store=store_dir, callbacks=[counter], progress=defaults, epoch_table=defaults,
        csv_tables=defaults, checkpoint=defaults, summary=False,
    )
    trainer.fit()
    assert len(counter.syncs) == 2
    # Reading the pass's sums once, a progress bar's reading now and then: far fewer than the steps.
    assert max(counter.syncs) <= 10, counter.syncs
