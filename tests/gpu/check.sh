#!/bin/bash
# The real-GPU check of issue 13, run by hand on a host with an NVIDIA GPU and its driver
# (CI has none): the release binary against real NVML, a `--gpus-per-slot auto` worker
# slot, jobs that see exactly their GPU, a real CUDA out-of-memory reported as a GPU fault.
# Needs python3 with torch for two steps (they fail without it; the rest stands).
#   cargo build --release -p buildcat-cli && tests/gpu/check.sh   # logs under $OUT
B=${BUILDCAT:-$PWD/target/release/buildcat}
OUT=${OUT:-$(mktemp -d)}
step() { echo; echo "=== $*"; }
trap 'kill $(jobs -p) 2>/dev/null' EXIT
step host; nvidia-smi -L; nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version --format=csv
ldd $B | grep -v linux-vdso
$B --version
rm -rf /tmp/farm && mkdir -p /tmp/farm && cd /tmp/farm
$B server --storage /tmp/farm/buildcat.db > $OUT/server.log 2>&1 &
for i in $(seq 200); do $B info > /dev/null 2>&1 && break; sleep 0.1; done
step "refused: more slots than GPUs"; timeout 10 $B workers -n 2 --gpus-per-slot 1; echo "exit $?"
$B workers --gpus-per-slot auto > $OUT/workers.log 2>&1 &
step "worker-info --json"; timeout 60 $B worker-info --json --timeout 50 | tee $OUT/worker-info.json
step info; $B info
step "nvidia-smi -L in a job needing one GPU"; timeout 60 $B run --wait --gpus 1 -- nvidia-smi -L; echo "exit $?"
step "job environment"; timeout 60 $B run --wait --gpus 1 -- sh -c 'env | grep -E "^(CUDA|HIP|ROCR|BUILDCAT_GPUS)" | sort'
step "torch in a job"; timeout 120 $B run --wait --gpus 1 --gpu-memory 100000 -- python3 -c 'import torch; print(torch.cuda.device_count(), torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory >> 20, "MiB")'; echo "exit $?"
step "real CUDA out-of-memory: a GPU fault"; J=$($B run --attempts 1 --gpus 1 -- python3 -c 'import torch; torch.empty(400 * 2**30, dtype=torch.uint8, device="cuda")'); echo "job $J"
timeout 120 $B wait $J; echo "exit $?"
$B status $J.0; $B status $J.0 --json | tee $OUT/oom-status.json | grep -i -E "gpu|reason" | head
step "a job no worker can run"; J2=$($B run --gpus 2 -- true); echo "job $J2"; sleep 1; $B info
$B info --json > $OUT/info.json
step "a --gpus none worker"; timeout 30 $B worker --gpus none --name nogpu > /dev/null 2>&1 & sleep 2; $B info | grep -A2 nogpu
step logs; grep -i -E "panic|error" $OUT/server.log $OUT/workers.log | head -20
echo done
