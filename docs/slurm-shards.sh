#!/bin/bash
# Static shards on a SLURM job array: N tasks, each downloads its slice of the plan
# (split by YouTube ID) into a root of its own.  Submit with
#   sbatch docs/slurm-shards.sh
# then merge once every task has finished (see docs/cluster.md):
#   sbatch --dependency=afterok:<array job id> --wrap 'audioset-fewshot merge shards/shard* --into ALL && audioset-fewshot run -c config.yaml --root ALL'
# A task that stopped (banned address, preempted job) resumes when submitted again:
#   sbatch --array=3 docs/slurm-shards.sh
#SBATCH --job-name=audioset-shards
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --output=shard-%a.out
set -euo pipefail
N=${SHARDS:-8}  # keep equal to the number of array tasks (--array=0-7 -> 8)
I=${SLURM_ARRAY_TASK_ID:?run me with sbatch --array}
CONFIG=${CONFIG:-config.yaml}  # the same config (seed, classes, sources) for every shard
mkdir -p shards
exec audioset-fewshot download -c "$CONFIG" --shard "${I}/${N}" --root "shards/shard${I}" --jobs "${SLURM_CPUS_PER_TASK:-4}"
