"""Images/s of torchvision's vgg16_bn and resnet50 (random weights) at 224x224
in PyTorch eager on the CPU: the peer that `cargo bench --bench imagenet` is
compared with (see benches/README.md).

    python benches/peers/pytorch_imagenet.py [--threads 2]

Each (model, batch) runs once per round, the two models interleaved, and
the median over rounds is printed (best round in brackets), as the Rust
bench measures. Requires `pip install torch torchvision`. Optional; not run
in CI.
"""

import argparse
import statistics
import time

import torch
import torchvision

BATCHES = (1, 32)
ROUNDS = (10, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = [
        ("vgg16_bn", torchvision.models.vgg16_bn(weights=None).eval()),
        ("resnet50", torchvision.models.resnet50(weights=None).eval()),
    ]
    print(
        f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
        "224x224, images/s: median of interleaved rounds (best round)"
    )
    with torch.inference_mode():
        for batch, rounds in zip(BATCHES, ROUNDS):
            x = torch.randn(batch, 3, 224, 224)
            for _, model in models:
                model(x)  # warm-up
            times = [[] for _ in models]
            for _ in range(rounds):
                for (_, model), t in zip(models, times):
                    start = time.perf_counter()
                    model(x)
                    t.append(time.perf_counter() - start)
            for (name, _), t in zip(models, times):
                print(f"pytorch  {name:<9} batch {batch:>2}: {batch / statistics.median(t):8.2f} ({batch / min(t):.2f})")


if __name__ == "__main__":
    main()
