"""The blip_retrieval training task handed to the core engine (official train_retrieval.py semantics)."""
import torch

from easyretrieval.distributed import multi_rank
from easyretrieval.engine.curves import CurveSpec
from easyretrieval.engine.task import TrainTask
from easyretrieval.secrets import mask_secrets

from appzoo.blip_retrieval.data import create_train_loader
from appzoo.blip_retrieval.evaluation.outputs import format_skipped
from appzoo.blip_retrieval.factories import create_app_model
from appzoo.blip_retrieval.model.checkpoint import official_layout, official_shapes
from appzoo.blip_retrieval.model.config import config_from_params
from appzoo.blip_retrieval.model.pretrained_folder import write_folder
from appzoo.blip_retrieval.schedule import alpha_at


def blip_param_groups(model, temp_lr_scale=1.0):
    """AdamW groups of a BlipRetrieval's trainable parameters (see BlipRetrievalTask.param_groups)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if temp_lr_scale == 1.0:
        return [{"params": params}]
    return [{"params": [p for p in params if p is not model.temp]},
            {"params": [p for p in params if p is model.temp], "lr_scale": temp_lr_scale}]


class BlipRetrievalTask(TrainTask):
    """Train ITC + ITM on `train_dataset`; evaluate `eval_datasets` ({split: dataset}) after every epoch."""

    def __init__(self, config, tokenizer, train_dataset, eval_datasets, evaluator, device, dist, seed,
                 augment_seed=None):
        self.config = config
        self.tokenizer = tokenizer
        self.eval_datasets = eval_datasets
        self.evaluator = evaluator
        self.device = device
        self.dist = dist
        self.loader = create_train_loader(
            train_dataset, config.batch_size_train, dist, num_workers=config.num_workers,
            pin_memory=config.pin_memory, persistent_workers=config.persistent_workers, seed=seed,
            augment_seed=augment_seed, start_method=config.worker_start_method,
        )
        self.seed = seed
        self.last_results = {}
        self._skips_reported = 0

    def build_model(self):
        return create_app_model(self.config, self.tokenizer, verbose=self.dist.is_main).to(self.device)

    def param_groups(self, model):
        """One AdamW group, as official; with temp_lr_scale != 1, `temp` in a second group at that LR scale."""
        return blip_param_groups(model, self.config.temp_lr_scale)

    def steps_per_epoch(self):
        return len(self.loader)

    def train_batches(self, epoch, start_step):
        sampler = self.loader.sampler
        sampler.set_epoch(epoch)
        sampler.set_start_index(start_step * self.config.batch_size_train)
        # The loader draws its workers' base seed when an epoch's iterator starts; from a generator of its own
        # it does not consume the global RNG, so a run resumed mid-epoch draws the same random numbers as an
        # uninterrupted one. Augmentations are seeded per sample (augment_seed), whatever the workers.
        self.loader.generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        for image, caption, idx in self.loader:
            yield image.to(self.device, non_blocking=True), list(caption), idx.to(self.device, non_blocking=True)

    def training_step(self, engine, batch, epoch, step, steps_per_epoch):
        image, caption, idx = batch
        alpha = alpha_at(epoch, step, steps_per_epoch, self.config.alpha)
        loss_ita, loss_itm = engine(image, caption, alpha=alpha, idx=idx)
        return {"loss": loss_ita + loss_itm, "loss_itm": loss_itm, "loss_ita": loss_ita}

    def after_optimizer_step(self, engine):
        """Clamp temp's fp32 master copy, so the official in-forward clamp holds under ZeRO / half precision."""
        from deepspeed.utils import safe_get_full_fp32_param, safe_set_full_fp32_param

        model = engine.module
        master = safe_get_full_fp32_param(model.temp)  # a collective under ZeRO-3: every rank calls it
        if master is None:
            return
        clamped = master.clamp(model.config.temp_min, model.config.temp_max)
        if not torch.equal(clamped, master):
            safe_set_full_fp32_param(model.temp, clamped)

    def evaluate(self, engine, epoch):
        self._report_train_skips(epoch)
        results = {}
        for split, dataset in self.eval_datasets.items():
            results[split] = self.evaluator.evaluate(engine.module, dataset)
            if self.dist.is_main and results[split].skipped.get("count"):
                print(f"[easyretrieval] epoch {epoch} " + format_skipped(split, results[split].skipped), flush=True)
        self.last_results = results
        return {split: dict(result.metrics) for split, result in results.items()}

    def _report_train_skips(self, epoch):
        """Training samples whose image was unreadable this epoch (skip_bad_images=True), summed over ranks."""
        count = torch.tensor([float(self.loader.num_skipped - self._skips_reported)])
        self._skips_reported = self.loader.num_skipped
        if multi_rank():
            count = count.to(self.device)  # gloo (CPU) or nccl (the training device)
            torch.distributed.all_reduce(count)
        if self.dist.is_main and int(count.item()):
            print(f"[easyretrieval] epoch {epoch} train: {int(count.item())} samples had an unreadable image and "
                  "were replaced by the next readable sample (skip_bad_images=True)", flush=True)

    def save_best_results(self, output_dir):
        """The best epoch's per-split metrics, rankings and timings (evaluation/outputs.py) in output_dir."""
        paths = []
        for split, result in self.last_results.items():
            paths += list(self.evaluator.save(result, output_dir, split).values())
        return paths

    def export_layout(self, state_dict):
        """The official `{'model': state_dict}` (checkpoint_best.pth, checkpoint_final.pth)."""
        return official_layout(state_dict)

    def save_pretrained(self, state_dict, folder, about):
        """OUTPUT_DIR/best: the best epoch's weights with this run's model config and tokenizer."""
        about = {"trained_on": self.config.dataset, "pretrained": mask_secrets(self.config.pretrained), **about}
        write_folder(folder, config_from_params(self.config, len(self.tokenizer)), self.tokenizer,
                     official_shapes(state_dict), about)

    def curve_specs(self):
        """curves.png: loss_ita and loss_itm per step, the learning rate per step, and per evaluated split
        R@1 (text and image retrieval) and r_mean per epoch."""
        specs = [CurveSpec("ITC / ITM losses", ["loss_ita", "loss_itm"]), CurveSpec("learning rate", ["lr"])]
        for split in self.eval_datasets:
            specs.append(CurveSpec(f"{split} recall (%)", [f"{split}_txt_r1", f"{split}_img_r1", f"{split}_r_mean"],
                                   per="epoch"))
        return specs

    def rank_state(self, model):
        return {"momentum_shadow": model.momentum_state_dict()}

    def load_rank_state(self, model, state):
        model.load_momentum_state_dict(state["momentum_shadow"])
