#!/usr/bin/env bash
# squeeze's forward bench and the PyTorch / ONNX Runtime peers, back to back,
# BLOCKS times in a row, so that a change in the machine's load shows up as a
# spread rather than as a difference between runtimes. Run from the workspace
# root:  PYTHON=/tmp/peers/bin/python benches/peers/compare.sh
set -euo pipefail
PYTHON=${PYTHON:-python3}
BLOCKS=${BLOCKS:-3}
REFERENCE=data/vgg16_bn_fashion_mnist.safetensors
SQUEEZED=${SQUEEZED:-target/peers/squeezed.safetensors}
mkdir -p "$(dirname "$SQUEEZED")"
if [ ! -f "$SQUEEZED" ]; then
  # The bench's squeezed model: default settings, the first 256 training images.
  cargo run --release --quiet -- compress --model "$REFERENCE" --dataset fashion-mnist --calib 256 --tau 0.99 --allow-rank-deficient \
    -o "$SQUEEZED" > /dev/null
fi
BENCH=$(cargo bench --bench forward --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p')
for block in $(seq "$BLOCKS"); do
  echo "== block $block: squeeze ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
  "$BENCH" --bench no-such-criterion-id 2>&1 | grep -E '^(VGG|model|original|squeezed)'
  echo "== block $block: peers ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
  "$PYTHON" benches/peers/pytorch_vgg16.py "$REFERENCE" "$SQUEEZED" --onnxruntime
done
