"""The blip_retrieval app: wires parameters to the model, data, evaluator and the core engine."""
import json
import os

from easyretrieval.app import App
from easyretrieval.distributed import device_for, init_distributed
from easyretrieval.log import get_logger
from easyretrieval.registry import register_app

from appzoo.blip_retrieval.params import SCHEMA, eval_splits, select_split

# This file is imported whenever the CLI lists apps or parameters, which must answer at once: every other
# module is imported inside the method that uses it (measured: moving the light ones here added ~15 ms).

logger = get_logger()


def ds_params_from(config):
    """The app parameters that fill the DeepSpeed config (one place)."""
    from easyretrieval.engine.ds_config import DsParams

    return DsParams(
        micro_batch_size=config.batch_size_train,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_clipping=config.gradient_clipping,
        precision=config.precision,
        zero_stage=config.zero_stage,
        names=(("micro_batch_size", "batch_size_train"),),  # the others are named as the parameters
    )


APP_NAME = "blip_retrieval"
SELECT_METRIC = "r_mean"  # the best epoch: highest mean of the six recalls (official train_retrieval.py)


@register_app(APP_NAME)
class BlipRetrievalApp(App):
    """BLIP image-text retrieval: train (ITC + ITM under DeepSpeed, best epoch by val r_mean), evaluate
    (official two-stage recall on val/test) and predict (ranked gallery per query), from the parameters
    in params.SCHEMA. Problems the user can fix raise UserError (one line, exit code 2)."""

    schema = SCHEMA

    @classmethod
    def export_layout(cls, state_dict):
        """The official `{'model': state_dict}` (temp 0-dim), which official BLIP and pretrained= load."""
        from appzoo.blip_retrieval.model.checkpoint import official_layout

        return official_layout(state_dict)

    def check(self):
        """Every check that needs no data, before any download, process group, data or model (App.check)."""
        from appzoo.blip_retrieval import checks
        from appzoo.blip_retrieval.predict_inputs import read_inputs

        cfg, run = self.config, self.run
        checks.check_image_size(cfg)
        checks.check_vit_stem(cfg)
        eval_splits(cfg)
        checks.check_eval_precision(cfg)
        if run.mode == "train":
            checks.check_queue(cfg, run.dist.world_size)
            self.ds_config()  # the DeepSpeed file read and filled: its problems too come before any work
            self.resume_point()  # the output folder may take this run; a resume is compatible so far
        else:
            checks.check_vocab_available(cfg, self.output_dirs())
            checks.check_report_path(cfg.report, "report")
        if run.mode == "predict":
            read_inputs(cfg)

    def output_dirs(self):
        """This run's output folder, then the --output_dir it writes under (evaluate/predict subfolders)."""
        return [self.run.output_dir] + ([self.run.given_output_dir] if self.run.given_output_dir else [])

    def ds_config(self):
        """The DeepSpeed config of train mode (pure: the file, filled from the parameters)."""
        from easyretrieval.engine.ds_config import build_ds_config, load_ds_config

        where = self.run.deepspeed_config or "the default DeepSpeed config (ds_configs/zero1.json)"
        return build_ds_config(load_ds_config(self.run.deepspeed_config), ds_params_from(self.config),
                               self.run.dist.world_size, where)

    def run_record(self, ds_config, train_samples=None, vocab=None):
        """What this training run is, as its checkpoints record it (resume_check.run_record)."""
        from appzoo.blip_retrieval import resume_check
        from easyretrieval.engine.ds_config import precision_of, zero_stage_of

        return resume_check.run_record(self.config, self.run.dist.world_size, self.run.seed, zero_stage_of(ds_config),
                          precision_of(ds_config), select_split(eval_splits(self.config)), train_samples, vocab)

    def resume_point(self, record=None):
        """The checkpoint this run resumes from (None: a fresh start), checked against this run's `record`
        (default: the parameters only); refuses an output_dir holding another run (UserError)."""
        from appzoo.blip_retrieval import resume_check
        from easyretrieval.engine.checkpointing import read_marker_or_none, resolve_resume
        from easyretrieval.run_dir import check_train_output_dir

        out = self.run.output_dir
        path = resolve_resume(self.config.resume, os.path.join(out, "checkpoints"))
        own = path is not None and os.path.abspath(os.path.dirname(os.path.dirname(path))) == os.path.abspath(out)
        if self.run.dist.is_main:
            check_train_output_dir(out, continuing=own, how_to_continue="with resume=auto")
        if path is None:
            return None
        note = resume_check.check_resume(path, read_marker_or_none(path) or {}, record or self.run_record(self.ds_config()))
        if note and record is not None and self.run.dist.is_main:
            logger.info("resume: %s", note)
        return path

    @classmethod
    def complete_config(cls, config):
        """Sizes that pretrained= describes fill the parameters the user did not set."""
        from appzoo.blip_retrieval import pretrained_params

        return pretrained_params.complete_config(config, cls.schema)

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
        from appzoo.blip_retrieval.evaluation.outputs import format_recall
        from easyretrieval.engine.trainer import BEST_DIR

        trainer = self.build_trainer()
        result = trainer.fit()
        state = result.state
        if state.best_epoch is not None:
            folder = os.path.join(self.run.output_dir, BEST_DIR)
            weights = [f"{result.best_path} (official layout)" if result.best_path else
                       "not available (see the warning above)"] \
                + ([f"{folder} (save_pretrained folder, pretrained= takes it)"] if os.path.isdir(folder) else [])
            logger.info("best epoch %d (by %s %s %.2f); weights: %s", state.best_epoch, trainer.args.select_split,
                        SELECT_METRIC, state.best_value, " and ".join(weights))
            if self.run.dist.is_main:  # results, not messages: plain lines on rank 0's stdout
                for split, metrics in state.best_metrics.items():
                    print(format_recall(split, metrics), flush=True)
            results = [p for p in result.best_files if p != result.best_path]
            if results:
                logger.info("best epoch's per-split metrics and rankings: %s", ", ".join(results))
        return result

    def build_trainer(self):
        """Data checked, tokenizer, DeepSpeed config, task and Trainer: everything train mode runs."""
        from appzoo.blip_retrieval import checks
        from appzoo.blip_retrieval.factories import copy_vocab, create_app_tokenizer, create_evaluator
        from appzoo.blip_retrieval.task import BlipRetrievalTask
        from easyretrieval.engine.trainer import Trainer, TrainerArgs

        cfg, run = self.config, self.run
        splits = eval_splits(cfg)
        ds_config = self.ds_config()
        resume_from = self.resume_point()  # parameters (again: examples and tests may skip check())
        info, device, datasets = self._setup(["train"] + splits)
        train_dataset = datasets.pop("train")
        checks.check_train_batches(len(train_dataset), cfg, info.world_size)
        if info.is_main:
            os.makedirs(run.output_dir, exist_ok=True)
            with open(os.path.join(run.output_dir, "ds_config.json"), "w", encoding="utf-8") as f:
                json.dump(ds_config, f, indent=2)
        if resume_from and cfg.tokenizer == "build":  # the resumed run's vocab, kept in this output folder too
            copy_vocab(os.path.dirname(os.path.dirname(resume_from)), run.output_dir, info)
        tokenizer = create_app_tokenizer(cfg, run.output_dir, info, train_dataset)
        record = self.run_record(ds_config, train_dataset.annotation, tokenizer.get_vocab())
        if resume_from:
            self.resume_point(record)  # now with the training samples and the vocab, before the model
        evaluator = create_evaluator(cfg, info, device)
        # Official create_sampler: DistributedSampler(shuffle=True) with its default seed 0. Augmentations
        # are seeded per sample from the run's seed (exact resume, independent of num_workers).
        task = BlipRetrievalTask(cfg, tokenizer, train_dataset, datasets, evaluator, device, info, seed=0,
                                 augment_seed=run.seed)
        args = TrainerArgs(
            output_dir=run.output_dir, max_epoch=cfg.max_epoch, init_lr=cfg.init_lr, min_lr=cfg.min_lr,
            weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, warmup_lr=cfg.warmup_lr,
            save_steps=cfg.save_steps, keep_last=cfg.keep_last,
            resume=cfg.resume, log_steps=cfg.log_steps, seed=run.seed, run_record=record, app=APP_NAME,
            select_split=select_split(splits), select_metric=SELECT_METRIC,
        )
        return Trainer(task, args, info, ds_config)

    def evaluate(self):
        from appzoo.blip_retrieval.evaluation.outputs import format_recall
        from appzoo.blip_retrieval.factories import create_app_model, create_app_tokenizer, create_evaluator

        cfg, run = self.config, self.run
        info, device, datasets = self._setup(eval_splits(cfg))
        if not cfg.pretrained and info.is_main:
            logger.warning("pretrained= is empty; evaluating randomly initialised weights")
        tokenizer = create_app_tokenizer(cfg, run.output_dir, info, search_dirs=self.output_dirs()[1:])
        model = create_app_model(cfg, tokenizer, verbose=info.is_main).to(device)
        evaluator = create_evaluator(cfg, info, device)
        results = {}
        for split, dataset in datasets.items():
            result = evaluator.evaluate(model, dataset)
            evaluator.save(result, run.output_dir, split)
            results[split] = result
            if info.is_main:  # results, not messages: plain lines on rank 0's stdout
                print(format_recall(split, result.metrics, result.skipped), flush=True)
        if cfg.report and info.is_main:
            from appzoo.blip_retrieval.reports import write_evaluate_report

            logger.info("report: %s", write_evaluate_report(cfg.report, results, datasets))
        return results

    def predict(self):
        from appzoo.blip_retrieval.predict import run_predict

        return run_predict(self.config, self.run)
