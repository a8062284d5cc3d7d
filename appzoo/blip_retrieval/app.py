"""The blip_retrieval app: wires parameters to the model, data, evaluator and the core engine."""
import json
import os

from easyretrieval.app import App
from easyretrieval.distributed import device_for, init_distributed
from easyretrieval.registry import register_app

from appzoo.blip_retrieval.params import SCHEMA


def ds_params_from(config):
    """The app parameters that fill the DeepSpeed config (one place)."""
    from easyretrieval.engine.ds_config import DsParams

    return DsParams(
        micro_batch_size=config.batch_size_train,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_clipping=config.gradient_clipping,
        precision=config.precision,
        zero_stage=config.zero_stage,
    )


@register_app("blip_retrieval")
class BlipRetrievalApp(App):
    schema = SCHEMA

    def _setup(self, splits):
        """Process group, device, data checked (synthetic generated once per node), datasets built."""
        from appzoo.blip_retrieval.data import prepare_data

        info = self.run.dist
        init_distributed(info, self.config.collective_timeout)
        prepare_data(self.config, info, splits=tuple(splits))
        datasets = {split: self.build_dataset(split) for split in splits}
        return info, device_for(info), datasets

    def build_dataset(self, split):
        from appzoo.blip_retrieval.data import build_dataset

        return build_dataset(self.config, split)

    def train(self):
        from appzoo.blip_retrieval.components import format_recall

        trainer = self.build_trainer()
        result = trainer.fit()
        if self.run.dist.is_main and result.state.best_epoch is not None:
            print(f"[easyretrieval] best epoch {result.state.best_epoch} (by {trainer.args.select_split} "
                  f"r_mean); weights: {result.best_path}", flush=True)
            for split, metrics in result.state.best_metrics.items():
                print(format_recall(split, metrics), flush=True)
        return result

    def build_trainer(self):
        """Data checked, tokenizer, DeepSpeed config, task and Trainer: everything train mode runs."""
        from appzoo.blip_retrieval.components import create_app_tokenizer, create_evaluator, eval_splits
        from appzoo.blip_retrieval.task import BlipRetrievalTask
        from easyretrieval.engine.ds_config import build_ds_config, load_ds_config
        from easyretrieval.engine.trainer import Trainer, TrainerArgs

        cfg, run = self.config, self.run
        splits = eval_splits(cfg)
        info, device, datasets = self._setup(["train"] + splits)
        train_dataset = datasets.pop("train")
        where = run.deepspeed_config or "the default DeepSpeed config (ds_configs/zero1.json)"
        ds_config = build_ds_config(load_ds_config(run.deepspeed_config), ds_params_from(cfg), info.world_size, where)
        if info.is_main:
            os.makedirs(run.output_dir, exist_ok=True)
            with open(os.path.join(run.output_dir, "ds_config.json"), "w", encoding="utf-8") as f:
                json.dump(ds_config, f, indent=2)
        tokenizer = create_app_tokenizer(cfg, run.output_dir, info, train_dataset)
        evaluator = create_evaluator(cfg, info, device)
        # Official create_sampler: DistributedSampler(shuffle=True) with its default seed 0. Augmentations
        # are seeded per sample from the run's seed (exact resume, independent of num_workers).
        task = BlipRetrievalTask(cfg, tokenizer, train_dataset, datasets, evaluator, device, info, seed=0,
                                 augment_seed=run.seed)
        args = TrainerArgs(
            output_dir=run.output_dir, max_epoch=cfg.max_epoch, init_lr=cfg.init_lr, min_lr=cfg.min_lr,
            weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, warmup_lr=cfg.warmup_lr,
            save_steps=cfg.save_steps, keep_last=cfg.keep_last,
            resume=cfg.resume, log_steps=cfg.log_steps, seed=run.seed,
            select_split="val" if "val" in datasets else (splits[0] if splits else "val"),
        )
        return Trainer(task, args, info, ds_config)

    def evaluate(self):
        from appzoo.blip_retrieval.components import (
            create_app_model, create_app_tokenizer, create_evaluator, eval_splits, format_recall,
        )

        cfg, run = self.config, self.run
        info, device, datasets = self._setup(eval_splits(cfg))
        if not cfg.pretrained and info.is_main:
            print("[easyretrieval] warning: pretrained= is empty; evaluating randomly initialised weights",
                  flush=True)
        tokenizer = create_app_tokenizer(cfg, run.output_dir, info)
        model = create_app_model(cfg, tokenizer, verbose=info.is_main).to(device)
        evaluator = create_evaluator(cfg, info, device)
        results = {}
        for split, dataset in datasets.items():
            result = evaluator.evaluate(model, dataset)
            evaluator.save(result, run.output_dir, split)
            results[split] = result
            if info.is_main:
                print(format_recall(split, result.metrics), flush=True)
        return results

    def predict(self):
        from appzoo.blip_retrieval.predict import run_predict

        return run_predict(self.config, self.run)
