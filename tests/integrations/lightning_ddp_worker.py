"""A Lightning DDP job on two CPU ranks, started by torchrun: python -m torch.distributed.run ... STORE ROOT."""

import sys

import lightning.pytorch as pl
import torch

from epochal.integrations.lightning import EpochalLogger


class Model(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, sync_dist=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    store, root = sys.argv[1:3]
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    logger = EpochalLogger(project="lit-ddp", store=store, system_metrics=False)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=logger,
                         log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=root)
    trainer.fit(Model(), torch.utils.data.DataLoader(data, batch_size=16))
    print(f"rank {trainer.global_rank} version {logger.version}", flush=True)
