"""The seed README's usage example (steps 2 and 3), with only its import line changed.

The pieces the README leaves as ``...`` (loaders, model, optimizer, loss) are tiny and synthetic.
Run as a script it trains for 10 epochs, then continues from ``epoch10.pth`` for 10 more.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from epochal.compat.template import TemplateModel
from torch.utils.tensorboard import SummaryWriter

torch.manual_seed(0)
_x = torch.randn(30, 1, 32, 32)
_y = (_x.mean(dim=(1, 2, 3)) > 0).long()
# 数据集
train_loader = DataLoader(TensorDataset(_x[:16], _y[:16]), batch_size=8, shuffle=True)
test_loader = DataLoader(TensorDataset(_x[16:], _y[16:]), batch_size=6)
# 模型信息
model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 15 * 15, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = nn.CrossEntropyLoss()


class Trainer(TemplateModel):
    def __init__(self):
        super(Trainer, self).__init__()
        # tensorboard
        self.writer = SummaryWriter()
        # 训练状态
        self.global_step = 0
        self.epoch = 0
        self.best_acc = 0.0
        # 模型架构
        self.model = model
        self.optimizer = optimizer
        self.criterion = loss_fn
        # 数据集
        self.train_loader = train_loader
        self.test_loader = test_loader
        # 运行设备
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # check_point 目录
        self.ckpt_dir = "./check_point"
        # 训练时print的间隔
        self.log_per_step = 100


epochs = 10
def train(continue_training=False, continue_model=None):
    trainer = Trainer()
    trainer.check_init()
    trainer.get_model_info(fake_inp=torch.randn(1, 1, 32, 32))
    # 继续训练某个模型
    if continue_training:
        trainer.load_state(continue_model)
    for epoch in range(epochs):
        print(f"Epoch {epoch + 1}\n-------------------------------")
        trainer.train_loop()
        trainer.eval(save_per_epochs=5)


if __name__ == "__main__":
    train()
    train(continue_training=True, continue_model="./check_point/epoch10.pth")
