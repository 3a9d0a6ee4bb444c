"""Images/s of a VGG checkpoint in PyTorch eager on the CPU: the peer that
`cargo bench --bench forward` is compared with (see benches/README.md).

    python benches/peers/pytorch_vgg16.py data/vgg16_bn_fashion_mnist.safetensors [SQUEEZED.safetensors ...]

The network is rebuilt from the checkpoint's torchvision names and shapes
(no torchvision needed): `features.N` conv/BatchNorm by their tensors, the
parameter-free ReLU and 2x2 max-pool from the gaps in the numbering, as
torchvision's VGG numbers them; `classifier.N` Linear, ReLU, Dropout. So a
squeezed checkpoint (narrower widths, BatchNorm kept or folded) loads too.
Weights are converted to float32. Every (model, batch) runs once per round,
interleaved, and the median over rounds is printed (best round in
brackets), like the Rust bench. `--onnxruntime` also exports each model
to ONNX and times ONNX Runtime's CPU provider with the same threads.
Requires `pip install torch safetensors` (and `onnxruntime onnx` for
`--onnxruntime`). Optional; not run in CI.
"""

import argparse
import re
import statistics
import tempfile
import time

import torch
from safetensors.torch import load_file
from torch import nn


class VGG(nn.Module):
    def __init__(self, features, classifier):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(state):
    """nn.Sequential features + classifier from a torchvision-named state dict."""
    feats = sorted({int(m.group(1)) for k in state for m in [re.match(r"features\.(\d+)\.", k)] if m})
    layers, kinds = [], {}
    for i in range(feats[-1] + 1):
        w = state.get(f"features.{i}.weight")
        if f"features.{i}.running_mean" in state:
            bn = nn.BatchNorm2d(w.shape[0], eps=1e-5)
            kinds[i] = "bn"
            layers.append(bn)
        elif w is not None and w.dim() == 4:
            out_c, in_c, k, _ = w.shape
            layers.append(nn.Conv2d(in_c, out_c, k, padding=k // 2, bias=f"features.{i}.bias" in state))
            kinds[i] = "conv"
        elif kinds.get(i - 1) in ("conv", "bn"):
            layers.append(nn.ReLU(inplace=True))
            kinds[i] = "relu"
        else:
            layers.append(nn.MaxPool2d(2, 2))
            kinds[i] = "pool"
    # The features end with a pool after the last ReLU (torchvision's VGG).
    if kinds[feats[-1]] in ("conv", "bn"):
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)]
    elif kinds[feats[-1]] == "relu":
        layers.append(nn.MaxPool2d(2, 2))
    linears = sorted({int(m.group(1)) for k in state for m in [re.match(r"classifier\.(\d+)\.weight", k)] if m})
    head = []
    for j in range(linears[-1] + 1):
        w = state.get(f"classifier.{j}.weight")
        if w is not None:
            head.append(nn.Linear(w.shape[1], w.shape[0]))
        elif isinstance(head[-1], nn.Linear):
            head.append(nn.ReLU(inplace=True))
        else:
            head.append(nn.Dropout(0.5))
    model = VGG(nn.Sequential(*layers), nn.Sequential(*head))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def onnxruntime_runner(model, in_c, side, threads, workdir):
    """A function running `model` in an ONNX Runtime CPU session (free batch size)."""
    import warnings

    import onnxruntime as ort

    path = f"{workdir}/{id(model)}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, in_c, side, side),), path, dynamo=False,
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x.numpy()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", type=int, default=32, help="input height and width")
    parser.add_argument("--rounds", type=int, nargs=2, default=[40, 8], metavar=("B1", "B64"))
    parser.add_argument("--onnxruntime", action="store_true", help="also time ONNX Runtime (pip install onnxruntime onnx)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [(path, build(load_file(path))) for path in args.checkpoints]
    print(
        f"PyTorch {torch.__version__}, {args.threads} threads, "
        "images/s: median of interleaved rounds (best round)"
    )
    runtimes = [("pytorch", lambda model, in_c, workdir: model)]
    if args.onnxruntime:
        runtimes.append(
            ("onnxrt", lambda model, in_c, workdir: onnxruntime_runner(model, in_c, args.side, args.threads, workdir))
        )
    # One runtime at a time: their worker threads spin after a run, and two
    # spinning pools interleaved on the same cores would slow each other.
    with tempfile.TemporaryDirectory() as workdir, torch.inference_mode():
        for runtime, make in runtimes:
            runners = [(path, model.features[0].in_channels, make(model, model.features[0].in_channels, workdir))
                       for path, model in models]
            for batch, rounds in zip((1, 64), args.rounds):
                inputs = [torch.randn(batch, in_c, args.side, args.side) for _, in_c, _ in runners]
                for (_, _, run), x in zip(runners, inputs):
                    run(x)  # warm-up
                times = [[] for _ in runners]
                for _ in range(rounds):
                    for (_, _, run), x, t in zip(runners, inputs, times):
                        start = time.perf_counter()
                        run(x)
                        t.append(time.perf_counter() - start)
                for (path, _, _), t in zip(runners, times):
                    rate = f"{batch / statistics.median(t):8.1f} ({batch / min(t):.1f})"
                    print(f"{runtime:<8} {path}  batch {batch:>2}: {rate}")


if __name__ == "__main__":
    main()
