#!/usr/bin/env python3
# Fixture for DiLoCo's outer optimizer (src/training/outer.ts): torch.optim.SGD(lr, momentum, nesterov=True)
# stepped from θ_start with the pseudo-gradient Δ as the gradient, over 3 rounds (so the momentum buffer carries).
#
# Run with Debian's PyTorch:   /usr/bin/python3 scripts/reference/outer_nesterov.py [--out test/fixtures/training]
# Writes outer-nesterov.json (committed; CI never needs torch): lr, momentum, n, theta0, and per round delta and
# the expected theta after the step, each a float32 little-endian array in base64.
import argparse
import base64
import json
import os

import torch


def b64(t):
    return base64.b64encode(t.detach().contiguous().to(torch.float32).numpy().tobytes()).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures/training")
    a = ap.parse_args()
    torch.manual_seed(7)
    n = 1000
    lr, momentum = 0.7, 0.9
    theta = torch.nn.Parameter(torch.randn(n) * 0.02)
    theta0 = theta.detach().clone()
    opt = torch.optim.SGD([theta], lr=lr, momentum=momentum, nesterov=True)
    rounds = []
    for r in range(3):
        # pseudo-gradients of varied magnitudes, with exact zeros and tiny values
        delta = torch.randn(n) * (10.0 ** torch.randint(-6, 0, (n,)).float())
        delta[::97] = 0.0
        theta.grad = delta.clone()
        opt.step()
        rounds.append({"delta": b64(delta), "theta": b64(theta)})
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "outer-nesterov.json"), "w") as f:
        json.dump({"torch": torch.__version__, "lr": lr, "momentum": momentum, "n": n, "theta0": b64(theta0), "rounds": rounds}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
