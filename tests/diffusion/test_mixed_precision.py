"""The bf16 path of the training loop (``mixed_precision: bf16``, what profiles/busi-gpu.yaml runs on
a GPU) on the CPU, where accelerate's autocast takes bf16 too: the forward runs in bf16, the
trained weights stay float32, and the loss is the fp32 loss to bf16's precision."""

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from builders import TINY_TRAIN, tiny_config, tiny_denoiser
from controlbreast.config import parse_config
from controlbreast.diffusion import pipeline
from controlbreast.diffusion.data import TrainingSet
from controlbreast.diffusion.models import noise_scheduler
from controlbreast.diffusion.train import Trainee, train


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one process-wide state and refuses another precision in it (each stage
    is its own process); the other tests of this process train in fp32."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def run(precision: str, folder) -> tuple[float, set[torch.dtype], torch.nn.Module]:
    """Six ControlNet steps of the tiny denoiser; the loss, the dtypes the UNet's first convolution
    produced during training, and the ControlNet."""
    AcceleratorState._reset_state(reset_partial_state=True)  # this test trains in both precisions
    denoiser = tiny_denoiser().train()
    seen: set[torch.dtype] = set()
    denoiser.unet.conv_in.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    generator = torch.Generator().manual_seed(0)
    data = TrainingSet(tuple(map(str, range(16))), torch.rand(16, 1, 32, 32, generator=generator) * 2 - 1,
                       torch.randint(0, 3, (16,), generator=generator),
                       (torch.rand(16, 1, 32, 32, generator=generator) > 0.9).float())
    config = parse_config({"train_controlnet": {**TINY_TRAIN, "steps": 6, "mixed_precision": precision,
                                                "checkpoint_every": 100, "validate_every": 100}})
    trainee = Trainee(denoiser, list(denoiser.controlnet.parameters()), lambda _: None, lambda _: None,
                      use_control=True)
    result = train(trainee, data, noise_scheduler(config.diffusion), config.train_controlnet,
                   config.diffusion, stage=f"test-{precision}", seed=0, checkpoint_folder=folder, code="test")
    return result.loss, seen, denoiser.controlnet


def test_bf16_runs_the_forward_in_bf16_on_float32_weights(tmp_path):
    loss_32, seen_32, _ = run("no", tmp_path / "fp32")
    loss_16, seen_16, controlnet = run("bf16", tmp_path / "bf16")
    assert seen_32 == {torch.float32} and torch.bfloat16 in seen_16
    assert {p.dtype for p in controlnet.parameters()} == {torch.float32}  # master weights
    assert torch.isfinite(torch.tensor(loss_16))
    assert loss_16 != loss_32 and abs(loss_16 - loss_32) < 0.05 * loss_32  # bf16 rounding, not another model


def test_a_bf16_base_stage_saves_float32_weights(tmp_path, prepared):
    config = tiny_config(tmp_path, prepared, train_base={"mixed_precision": "bf16"})
    summary = pipeline.train_base(config)
    assert summary["steps"] == TINY_TRAIN["steps"]
    weights = load_file(config.paths.models / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
