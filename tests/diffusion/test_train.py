import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import load_file

from builders import tiny_config
from controlbreast.data.imageio import encode_png
from controlbreast.diffusion import pipeline
from controlbreast.diffusion.checkpoints import checkpoints, stored_runs
from controlbreast.diffusion.validation import Validation
from controlbreast.errors import TrainingDivergedError

CONTROLNET_WEIGHTS = "controlnet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def base(prepared, tmp_path_factory):
    """A tiny base model trained once (4 steps) for the ControlNet tests of this module."""
    config = tiny_config(tmp_path_factory.mktemp("base"), prepared)
    summary = pipeline.train_base(config)
    return config, summary


def _with_base(tmp_path, prepared, base_config, **sections):
    config = tiny_config(tmp_path, prepared, **sections)
    source = base_config.paths.models / "base"
    target = config.paths.models / "base"
    target.parent.mkdir(parents=True)
    target.symlink_to(source)
    return config


def test_base_stage_writes_a_loadable_model_and_checkpoints(base):
    config, summary = base
    assert summary["steps"] == 4 and summary["resumed_from"] == 0
    folder = config.paths.models / "base"
    assert json.loads((folder / "backend.json").read_text())["backend"] == "pixel"
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    assert unet.config.in_channels == 1 and unet.config.sample_size == 32
    [run] = stored_runs(config.paths.checkpoints)
    assert run.stage == "train_base" and run.steps == (2, 4)
    kept = checkpoints(run.folder)
    assert {"optimizer.bin", "lr_scheduler.pt", "random_states_0.pkl", "state.json"} <= {
        p.name for p in kept[-1].iterdir()}  # accelerate's state, and no flat model file beside unet/
    assert not list(kept[-1].glob("model*.safetensors"))
    UNet2DConditionModel.from_pretrained(kept[-1] / "unet")  # checkpoints load with from_pretrained


def test_controlnet_stage_trains_the_controlnet_only(tmp_path, prepared, base):
    config = _with_base(tmp_path, prepared, base[0])
    before = {k: v.clone() for k, v in UNet2DConditionModel.from_pretrained(
        config.paths.models / "base" / "unet").state_dict().items()}
    summary = pipeline.train_controlnet(config)
    assert {"control_f1", "control_f1_shuffled"} <= set(summary)
    controlnet = ControlNetModel.from_pretrained(config.paths.models / "controlnet")
    assert controlnet.config.conditioning_channels == 1
    zero_conv = controlnet.controlnet_mid_block.weight
    assert zero_conv.abs().sum() > 0  # trained away from its zero start
    after = UNet2DConditionModel.from_pretrained(config.paths.models / "base" / "unet").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tmp_path, prepared, base, monkeypatch):
    train = {"ema_decay": 0.9, "validate_every": 1, "checkpoint_every": 2}
    straight = _with_base(tmp_path / "straight", prepared, base[0], train_controlnet=train)
    pipeline.train_controlnet(straight)
    expected = load_file(straight.paths.models / "controlnet" / "diffusion_pytorch_model.safetensors")

    interrupted = _with_base(tmp_path / "resumed", prepared, base[0], train_controlnet=train)
    original = Validation.__call__

    def killed_at_step_3(self, denoiser, step):
        if step == 3:
            raise KeyboardInterrupt
        return original(self, denoiser, step)

    monkeypatch.setattr(Validation, "__call__", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_controlnet(interrupted)
    assert not (interrupted.paths.models / "controlnet").exists()  # nothing half-written
    monkeypatch.setattr(Validation, "__call__", original)
    summary = pipeline.train_controlnet(interrupted, resume=True)
    assert summary["resumed_from"] == 2
    resumed = load_file(interrupted.paths.models / "controlnet" / "diffusion_pytorch_model.safetensors")
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, prepared, base):
    config = _with_base(tmp_path, prepared, base[0],
                        train_controlnet={"steps": 40, "learning_rate": 1e6, "lr_warmup_steps": 0,
                                          "max_grad_norm": 1e9, "validate_every": 100,
                                          "checkpoint_every": 1, "divergence_factor": 2.0})
    with pytest.raises(TrainingDivergedError, match="training diverged; lower the learning rate"):
        pipeline.train_controlnet(config)
    [run] = stored_runs(config.paths.checkpoints)
    kept = checkpoints(run.folder)
    assert kept, "the steps before the divergence were checkpointed"
    weights = load_file(kept[-1] / CONTROLNET_WEIGHTS)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (config.paths.models / "controlnet").exists()


def test_checkpoints_of_another_configuration_are_not_resumed_and_not_deleted(tmp_path, prepared, base):
    config = _with_base(tmp_path, prepared, base[0], train_controlnet={"steps": 2})
    pipeline.train_controlnet(config)
    changed = _with_base(tmp_path / "changed", prepared, base[0],
                         train_controlnet={"steps": 2, "learning_rate": 5e-4},
                         paths={"checkpoints": str(config.paths.checkpoints)})
    assert pipeline.train_controlnet(changed, resume=True)["resumed_from"] == 0
    runs = stored_runs(config.paths.checkpoints)
    assert len(runs) == 2 and all(run.steps == (2,) for run in runs)  # the first one is still there


def test_raising_steps_continues_a_finished_run_exactly(tmp_path, prepared, base):
    straight = _with_base(tmp_path / "straight", prepared, base[0], train_controlnet={"steps": 4})
    pipeline.train_controlnet(straight)
    short = _with_base(tmp_path / "extended", prepared, base[0], train_controlnet={"steps": 2})
    pipeline.train_controlnet(short)
    extended = _with_base(tmp_path / "extended2", prepared, base[0], train_controlnet={"steps": 4},
                          paths={"checkpoints": str(short.paths.checkpoints)})
    assert pipeline.train_controlnet(extended, resume=True)["resumed_from"] == 2
    expected = load_file(straight.paths.models / "controlnet" / "diffusion_pytorch_model.safetensors")
    got = load_file(extended.paths.models / "controlnet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_changed_controls_with_the_same_ids_retrain(tmp_path, prepared, base):
    config = _with_base(tmp_path, prepared, base[0], train_controlnet={"steps": 2})
    pipeline.train_controlnet(config)
    blanked = tmp_path / "blank-controls"
    shutil.copytree(prepared.paths.controls, blanked)
    for edge in (blanked / "edges").glob("*.png"):
        edge.write_bytes(encode_png(np.zeros((32, 32), np.uint8)))
    changed = _with_base(tmp_path / "changed", prepared, base[0], train_controlnet={"steps": 2},
                         paths={"checkpoints": str(config.paths.checkpoints), "controls": str(blanked)})
    assert pipeline.train_controlnet(changed, resume=True)["resumed_from"] == 0


def test_a_resume_across_a_code_change_is_allowed_and_reported(tmp_path, prepared, base, monkeypatch):
    config = _with_base(tmp_path, prepared, base[0], train_controlnet={"steps": 2})
    pipeline.train_controlnet(config)
    monkeypatch.setattr(pipeline, "code_digest", lambda: "edited-code")
    longer = config.train_controlnet.model_copy(update={"steps": 3})
    summary = pipeline.train_controlnet(config.model_copy(update={"train_controlnet": longer}), resume=True)
    assert summary["resumed_from"] == 2 and summary["resumed_across_code_change"] is True


def test_the_grad_scaler_state_survives_a_checkpoint(tmp_path):
    """Under fp16 accelerate keeps a GradScaler; a resumed run must get its scale back, not restart it."""
    from accelerate import Accelerator

    from controlbreast.diffusion.checkpoints import latest, save

    accelerator = Accelerator()
    model = accelerator.prepare(torch.nn.Linear(2, 1))
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    for _ in range(3):  # overflowing steps halve the scale: state a fresh scaler would not have
        accelerator.scaler.scale(model(torch.full((1, 2), float("inf"))).sum()).backward()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        accelerator.scaler.step(optimizer)
        accelerator.scaler.update()
    saved = accelerator.scaler.state_dict()
    save(accelerator, tmp_path, 3, {"loss_mean": 1.0, "code": ""}, keep=1)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    accelerator.load_state(str(latest(tmp_path).folder))
    assert saved["scale"] == 128.0 and accelerator.scaler.state_dict() == saved
