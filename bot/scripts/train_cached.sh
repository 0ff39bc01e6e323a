#!/usr/bin/env bash
# Train the assistant only when no model exists yet for these inputs.
#
# The cache key is the SHA-256 of config.yml, domain.yml, every file under data/ (names and
# contents) and requirements.txt (a model only loads in the Rasa version that trained it).
# Models are kept in ${FARO_MODEL_CACHE:-$HOME/.cache/faro/models}/<hash>.tar.gz and copied to
# bot/models/current.tar.gz, the path every command and `faro run` load.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${FARO_MODEL_CACHE:-$HOME/.cache/faro/models}"
hash=$(
  { printf '%s\n' config.yml domain.yml requirements.txt; find data -type f; } \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
)
model="$cache/$hash.tar.gz"
echo "bot model hash: $hash"

if [ -f "$model" ]; then
  echo "bot model: cached, not training ($model)"
else
  echo "bot model: training (no cached $model)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.train-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  RASA_TELEMETRY_ENABLED=false .venv/bin/rasa train --config config.yml --domain domain.yml \
    --data data --out "$tmp" --fixed-model-name model
  mv "$tmp/model.tar.gz" "$model"  # same file system: other readers never see half a model
  echo "bot model: trained in $(( $(date +%s) - start )) s"
fi

mkdir -p models
cp "$model" models/.current.tar.gz.tmp
mv models/.current.tar.gz.tmp models/current.tar.gz
echo "bot model: models/current.tar.gz <- $model"
