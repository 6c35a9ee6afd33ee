"""A transformers.Trainer recorded by EpochalCallback under torchrun: ``hf_ddp_worker.py OUT STORE``.

Trains until step 3 (every rank stops, as at a time limit), then a new Trainer with a new callback
resumes from the last checkpoint (step 2) and trains to the end. Each rank prints the run it recorded.
"""

import sys

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from epochal.integrations.huggingface import EpochalCallback


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 50, (n, 8), generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class StopAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            control.should_training_stop = True


def train(out: str, store: str, resume: bool) -> EpochalCallback:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=16))
    # 32 samples, 4 a rank, 2 ranks: 4 steps an epoch.
    args = TrainingArguments(output_dir=out, num_train_epochs=2, per_device_train_batch_size=4,
                             eval_strategy="epoch", save_strategy="steps", save_steps=2, logging_steps=1,
                             report_to="none", use_cpu=True, disable_tqdm=True, seed=0, ddp_backend="gloo")
    callback = EpochalCallback(project="ddp", store=store)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(32), eval_dataset=Tokens(16),
                      callbacks=[callback] + ([] if resume else [StopAt()]))
    trainer.train(resume_from_checkpoint=True if resume else None)
    return callback


if __name__ == "__main__":
    first = train(sys.argv[1], sys.argv[2], resume=False)
    second = train(sys.argv[1], sys.argv[2], resume=True)
    print(f"recorded: first {first.run.id} second {second.run.id} rank {second.run.rank}", flush=True)
