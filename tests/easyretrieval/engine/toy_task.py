"""A tiny TrainTask for the engine tests: a 2-layer MLP with a frozen EMA copy and a feature queue buffer
(the same kinds of state as BLIP's momentum encoders and queues), trained on a fixed regression set."""
import torch
import torch.distributed as dist
from torch import nn

from easyretrieval.engine.deepspeed_compat import local_shard
from easyretrieval.engine.task import TrainTask

N_TRAIN, N_VAL, DIM = 64, 32, 8


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    w = torch.arange(DIM, dtype=torch.float32).div(DIM).unsqueeze(1)
    return x, x @ w + 0.5


class ToyModel(nn.Module):
    def __init__(self, momentum=0.9):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DIM, 16), nn.Tanh(), nn.Linear(16, 1))
        self.net_m = nn.Sequential(nn.Linear(DIM, 16), nn.Tanh(), nn.Linear(16, 1))
        for p, p_m in zip(self.net.parameters(), self.net_m.parameters()):
            p_m.data.copy_(p.data)
            p_m.requires_grad = False
        self.momentum = momentum
        self.register_buffer("queue", torch.zeros(8))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self):
        for p, p_m in zip(self.net.parameters(), self.net_m.parameters()):
            src, dst = local_shard(p), local_shard(p_m)
            dst.mul_(self.momentum).add_(src, alpha=1 - self.momentum)

    def forward(self, x, y=None, noise=0.0):
        if y is None:
            return self.net(x)
        if noise:
            x = x + noise * torch.randn_like(x)
        pred = self.net(x)
        loss = ((pred - y) ** 2).mean()
        self._momentum_update()
        with torch.no_grad():
            pred_m = self.net_m(x)
            ptr = int(self.queue_ptr)
            self.queue[ptr] = loss.detach() + pred_m.mean()
            self.queue_ptr[0] = (ptr + 1) % self.queue.numel()
        return loss


class ToyTask(TrainTask):
    def __init__(self, batch_size, rank=0, world_size=1, seed=0, noise=0.0, hooks=None, head_lr_scale=None):
        self.batch_size = batch_size
        self.head_lr_scale = head_lr_scale  # None: one optimizer group; else net.2 in a group of this lr_scale
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.noise = noise
        self.x, self.y = _data(N_TRAIN, 1)
        self.vx, self.vy = _data(N_VAL, 2)
        self.losses = []  # mean loss over ranks at every micro step
        self.lrs = []  # the optimizer's LR at every micro step
        self.group_lrs = []  # every optimizer group's LR at every micro step
        self.hooks = hooks or {}

    def build_model(self):
        return ToyModel()

    def param_groups(self, model):
        if self.head_lr_scale is None:
            return super().param_groups(model)
        head = list(model.net[2].parameters())
        rest = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in head)]
        return [{"params": rest}, {"params": head, "lr_scale": self.head_lr_scale}]

    def steps_per_epoch(self):
        return N_TRAIN // (self.batch_size * self.world_size)

    def train_batches(self, epoch, start_step):
        perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(self.seed + epoch))
        mine = perm[self.rank::self.world_size]
        for k in range(start_step, self.steps_per_epoch()):
            idx = mine[k * self.batch_size:(k + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]

    def training_step(self, engine, batch, epoch, step, steps_per_epoch):
        x, y = batch
        self.lrs.append(engine.optimizer.param_groups[0]["lr"])
        self.group_lrs.append([group["lr"] for group in engine.optimizer.param_groups])
        loss = engine(x, y, noise=self.noise)
        mean = loss.detach().clone()
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        self.losses.append(float(mean))
        return {"loss": loss}

    def after_optimizer_step(self, engine):
        hook = self.hooks.get("after_step")
        if hook is not None:
            hook(engine)

    def evaluate(self, engine, epoch):
        with torch.no_grad():
            pred = engine(self.vx)
        mse = float(((pred.float() - self.vy) ** 2).mean())
        return {"val": {"r_mean": -mse, "mse": mse}, "test": {"r_mean": -mse, "mse": mse}}

    def rank_state(self, model):
        return {"losses": list(self.losses), "lrs": list(self.lrs)}

    def load_rank_state(self, model, state):
        self.losses = list(state["losses"])
        self.lrs = list(state["lrs"])
