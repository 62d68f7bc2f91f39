# Shared shell helpers for scripts/*. Source it; do not run it.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENV="${VENV:-$ROOT/.venv}"
RUNTIME="${TRITON_RUNTIME:-$ROOT/.triton}"
TRITON_HOME="$RUNTIME/pytriton/tritonserver"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Environment for anything that runs Triton's binaries or Python models.
triton_env() {
  export PATH="$VENV/bin:$RUNTIME/bin:$PATH"
  export LD_LIBRARY_PATH="$RUNTIME/nvidia_pytriton.libs:$VENV/lib/python3.11/site-packages/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
