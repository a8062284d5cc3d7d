"""A resume is compared with its checkpoint's run record: shape, data-order, optimizer-layout and objective
changes are refused in one line naming each; a schedule change is accepted at an epoch end only."""
import pytest

from appzoo.blip_retrieval.params import SCHEMA
from appzoo.blip_retrieval.resume_check import check_resume, run_record
from easyretrieval.errors import UserError

BASE = {"vit": "tiny", "image_size": "32", "queue_size": "8", "batch_size_train": "4", "max_epoch": "2"}
SAMPLES = [{"image": "a.jpg", "caption": "a red box", "image_id": "a"},
           {"image": "b.jpg", "caption": "a blue box", "image_id": "b"}]


def record(world_size=1, seed=42, samples=SAMPLES, vocab=None, **params):
    config = SCHEMA.resolve(dict(BASE, **params))
    return run_record(config, world_size, seed, zero_stage=1, precision="fp32", select_split="val",
                      train_samples=samples, vocab=vocab)


def marker(epoch=1, step=0, **params):
    return {"world_size": 1, "epoch": epoch, "step_in_epoch": step, "run": record(**params)}


def refused(current, **marker_args):
    with pytest.raises(UserError) as info:
        check_resume("out/checkpoints/step_00000002", marker(**marker_args), current)
    message = str(info.value)
    assert "\n" not in message and message.startswith("resume: this run differs from checkpoint")
    return message


def test_same_run_resumes_silently():
    assert check_resume("ckpt", marker(), record()) is None
    assert check_resume("ckpt", marker(), record(num_workers="2", k_test="8", pretrained="x.pth")) is None


@pytest.mark.parametrize("param,value", [("queue_size", "16"), ("image_size", "48"), ("vit", "small")])
def test_shape_changes_are_refused_by_name(param, value):
    message = refused(record(**{param: value}))
    assert f"{param} " in message and "tensor shapes" in message


@pytest.mark.parametrize("change,name", [
    ({"batch_size_train": "2"}, "batch_size_train"),
    ({"gradient_accumulation_steps": "2"}, "gradient_accumulation_steps"),
    ({"world_size": 2}, "number of ranks"),
    ({"seed": 7}, "--seed"),
    ({"samples": SAMPLES[:1]}, "training samples"),
    ({"samples": list(reversed(SAMPLES))}, "training samples"),  # same samples, another order
    ({"vocab": {"[PAD]": 0, "red": 1}}, "tokenizer vocab"),
    ({"alpha": "0.3"}, "alpha"),
    ({"weight_decay": "0.1"}, "weight_decay"),
])
def test_data_order_objective_and_vocab_changes_are_refused(change, name):
    marker_args = {"vocab": {"[PAD]": 0, "blue": 1}} if "vocab" in change else {}
    assert name in refused(record(**change), **marker_args)


def test_every_difference_is_named_in_one_line():
    message = refused(record(queue_size="16", seed=7, alpha="0.2"))
    assert "queue_size 8 -> 16" in message and "--seed 42 -> 7" in message and "alpha 0.4 -> 0.2" in message


def test_schedule_change_at_an_epoch_end_is_accepted_and_said():
    note = check_resume("ckpt", marker(epoch=1, step=0), record(max_epoch="4", init_lr="0"))
    assert "max_epoch 2 -> 4" in note and "init_lr" in note and "epochs from 1 on" in note


def test_schedule_change_inside_an_epoch_is_refused():
    message = refused(record(max_epoch="4"), epoch=1, step=3)
    assert "max_epoch" in message and "inside epoch 1" in message


def test_fewer_epochs_than_trained_is_refused():
    with pytest.raises(UserError, match="has trained 2 epochs, more than max_epoch=1"):
        check_resume("ckpt", marker(epoch=2), record(max_epoch="1"))


def test_checkpoint_without_record_still_checks_the_world_size():
    with pytest.raises(UserError, match="number of ranks 1 -> 2"):
        check_resume("ckpt", {"world_size": 1, "epoch": 0, "step_in_epoch": 0}, record(world_size=2))
    assert check_resume("ckpt", {"world_size": 1, "epoch": 0, "step_in_epoch": 0}, record(queue_size="16")) is None


def test_record_masks_secrets(monkeypatch):
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "S3cr3tKeyValue0123456789")
    rec = record(image_root="oss://bucket/S3cr3tKeyValue0123456789/images")
    assert "S3cr3tKeyValue0123456789" not in str(rec)
