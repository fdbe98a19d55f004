"""Regenerate ``tests/fixtures/digits_mobilenetv2_a0.35_r32.pth``: MobileNetV2 α 0.35 at 32×32 trained on
scikit-learn's handwritten digits, the model of the INT8 accuracy test (tests/export/test_int8_accuracy.py).

The checkpoint is committed because training follows the CPU's float kernels: the same seeded run
reached 95.2 % on an AVX2 EPYC and 93.5 % on an AVX-512 VNNI EPYC, and a test that trains its own
model tests the machine as much as the quantizer. Seeded and single-threaded, a rerun on the same
machine and torch writes the same weights; another machine may write slightly different ones.

    python benchmarks/make_digits_fixture.py [--epochs 25] [--out tests/fixtures/...pth]

The data helpers here are shared with the test and with ``benchmarks/int8_digits.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "digits_mobilenetv2_a0.35_r32.pth"
RESOLUTION = 32
WIDTH_MULT = 0.35
SEED = 0
# Pixel shifts of the evaluation copies: 25 copies of each test digit, so the paired INT8-vs-FP32
# difference is counted on 13,500 inputs instead of 540 (which cannot resolve a 1-point bound).
SHIFTS = tuple((dy, dx) for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2))


def digits_as_images(spec):
    """8×8 digits (0..16) → RGB-like tensors at the model's resolution, normalised with its spec;
    (x_train, x_test, y_train, y_test), a stratified 70/30 split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(spec.height, spec.width), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    x = ((x - mean) / std).numpy().astype(np.float32)
    return train_test_split(x, d.target, test_size=0.3, random_state=0, stratify=d.target)


def shift(x: np.ndarray, dy: int, dx: int, spec) -> np.ndarray:
    """``x`` (N, C, H, W) moved by ``dy``, ``dx`` pixels, the uncovered border filled with the
    normalised background (a black pixel)."""
    background = ((0.0 - np.asarray(spec.mean)) / np.asarray(spec.std)).astype(np.float32).reshape(1, 3, 1, 1)
    h, w = x.shape[2:]
    out = np.broadcast_to(background, x.shape).copy()
    out[:, :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def shifted_copies(x: np.ndarray, y: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """Every image of ``x`` moved by each of :data:`SHIFTS`, with the labels repeated."""
    return np.concatenate([shift(x, dy, dx, spec) for dy, dx in SHIFTS]), np.tile(y, len(SHIFTS))


def train(model, x, y, epochs=25, seed=SEED, spec=None):
    """AdamW with a one-cycle schedule; with ``spec``, each batch is moved by one of :data:`SHIFTS`
    (the evaluation's shifts: without them the model lost 6–70 points on shifted digits)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(x) + 63) // 64))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            batch = xt[idx]
            if spec is not None:
                dy, dx = SHIFTS[rng.integers(len(SHIFTS))]
                batch = torch.from_numpy(shift(batch.numpy(), dy, dx, spec))
            loss = F.cross_entropy(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(ROOT))
    import edgecv
    from edgecv.sysinfo import machine_info

    torch.set_num_threads(1)  # thread count changes float summation order, hence the weights
    torch.use_deterministic_algorithms(True)
    model = edgecv.create_model("mobilenetv2", num_classes=10, width_mult=WIDTH_MULT, resolution=RESOLUTION)
    x_train, x_test, y_train, y_test = digits_as_images(model.input_spec)
    start = time.perf_counter()
    train(model, x_train, y_train, epochs=args.epochs, spec=model.input_spec)
    x_eval, y_eval = shifted_copies(x_test, y_test, model.input_spec)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
        acc_shifted = float((model(torch.from_numpy(x_eval)).argmax(1).numpy() == y_eval).mean())
    info = machine_info()
    meta = {
        "model": "mobilenetv2",
        "width_mult": WIDTH_MULT,
        "resolution": RESOLUTION,
        "num_classes": 10,
        "epochs": args.epochs,
        "seed": SEED,
        "torch": str(torch.__version__),
        "cpu": info["cpu"],
        "flags": info["flags"],
        "test_top1": round(acc, 4),
        "shifted_top1": round(acc_shifted, 4),
        "augmented": "shifts",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Plain tensors and a dict of plain values: loads with torch.load(weights_only=True).
    torch.save({"state_dict": model.state_dict(), "meta": meta}, args.out)
    print(
        f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; FP32 top-1 {acc:.2%} on "
        f"{len(y_test)} test digits, {acc_shifted:.2%} on their {len(y_eval)} shifted copies; wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
