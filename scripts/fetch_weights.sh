#!/usr/bin/env bash
# Download the starting weights of the paper profile into weights/ (or the folder given as $1).
# Needs the internet: run it once on a connected machine and copy the folder if your GPU
# machine is offline. Nothing else in this repository downloads anything.
#
#   scripts/fetch_weights.sh [DIR] [--with-patches-release]
#
#   legacy_xception.pth  ImageNet Xception (timm legacy_xception, via timm's own download)
#                        -> Grad-CAM, weak and full
#   xcp_reg.tar          FFD checkpoint (Dang et al., CVPR 2020; Xception + regression map)
#                        -> Attention, weak and full
#   dolos-patches/       optional (--with-patches-release): the DOLOS authors' trained Patches
#                        models of sections 5.1 and 5.2, for comparison with ours
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="weights"; release=0
for a in "$@"; do
  case "$a" in
    --with-patches-release) release=1 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) dir="$a" ;;
  esac
done
mkdir -p "$dir"
source scripts/bootstrap.sh

fetch() {  # URL FILE
  if command -v curl >/dev/null; then curl -fL --retry 3 -o "$2.part" "$1"; else wget -O "$2.part" "$1"; fi
  mv "$2.part" "$2"
}

if [ ! -f "$dir/legacy_xception.pth" ]; then
  echo "[weights] ImageNet Xception through timm -> $dir/legacy_xception.pth"
  "$DOLOS_PYTHON" - "$dir/legacy_xception.pth" <<'PY' || { echo "error: timm could not download legacy_xception (no internet?)" >&2; exit 1; }
import sys, timm, torch
net = timm.create_model("legacy_xception", pretrained=True)
torch.save(net.state_dict(), sys.argv[1])
PY
fi
if [ ! -f "$dir/xcp_reg.tar" ]; then
  echo "[weights] FFD checkpoint -> $dir/xcp_reg.tar"
  fetch https://github.com/JStehouwer/FFD_CVPR2020/releases/download/v2.0/xcp_reg.tar "$dir/xcp_reg.tar" ||
    { echo "error: could not download the FFD checkpoint (no internet?)" >&2; exit 1; }
fi
if [ "$release" = 1 ] && [ ! -d "$dir/dolos-patches" ]; then
  echo "[weights] the DOLOS authors' Patches models -> $dir/dolos-patches/"
  fetch "https://sharing.speed.pub.ro/owncloud/index.php/s/MTSTY7tnKqn21h4/download" "$dir/dolos-patches.zip" ||
    { echo "error: could not download the released Patches models (server down? see bit-ml/dolos issue 3)" >&2; exit 1; }
  mkdir -p "$dir/dolos-patches" && (cd "$dir/dolos-patches" && unzip -q ../dolos-patches.zip) && rm "$dir/dolos-patches.zip"
fi
"$DOLOS_PYTHON" - "$dir" <<'PY'
import sys
from pathlib import Path
from dolos_core.models import build_model
d = Path(sys.argv[1])
for method, f in (("gradcam", "legacy_xception.pth"), ("attention", "xcp_reg.tar")):
    build_model(method, "weak", init=d / f)   # loads, or says what does not fit
    print(f"[weights] {d / f}: loads into {method}")
PY
