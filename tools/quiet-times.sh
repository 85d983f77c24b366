#!/usr/bin/env bash
# The README's "Times, measured" figures: command 1's job (Classic5 barbara, MATLAB q10) on the auto path twice
# (the first run also converts the network into a fresh engine cache), on PyTorch float32, and on ONNX Runtime
# float32 from an exported graph. Run it on a quiet machine, in the activated environment.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DAGL_ENGINE_CACHE=$work/cache
data=${DAGL_DATASETS:-../shared/datasets}/classic5
dagl-export --task jpeg --onnx-only --output-dir "$work/onnx" >/dev/null
uptime
for model in jpeg jpeg "jpeg --backend torch" "$work/onnx/dagl-jpeg.onnx"; do
  echo "== dagl-infer $model"
  # shellcheck disable=SC2086  # "$model" carries an option on purpose
  /usr/bin/time -f "wall %e s, user %U s, sys %S s" dagl-infer $model "$data/jpeg_q10/barbara.jpeg" \
    -o "$work/out.png" --overwrite --reference "$data/barbara.bmp"
done
