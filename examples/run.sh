#!/usr/bin/env bash
# Submit one job spec and print its metrics, epoch by epoch, until the job ends.
#   examples/run.sh examples/spiral-relu-adam.json
# SERVICE_URL (default http://127.0.0.1:8000) says where the service listens; API_KEY (default:
# the contents of data/api-key) is the key to send.
set -euo pipefail

spec=${1:?usage: examples/run.sh SPEC.json}
url=${SERVICE_URL:-http://127.0.0.1:8000}
key=${API_KEY:-$(cat data/api-key)}
auth="Authorization: Bearer $key"

# field NAME: one top-level field of the JSON document on stdin.
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# last_epoch SHOWN: the last epoch of the metrics document on stdin, or SHOWN when it has none.
last_epoch() {
  python3 -c 'import json, sys; e = json.load(sys.stdin)["epochs"]; print(e[-1]["epoch"] if e else sys.argv[1])' "$1"
}

# One line per epoch of the metrics document on stdin.
read -r -d '' print_epochs <<'PY' || true
import json, sys
for m in json.load(sys.stdin)["epochs"]:
    line = f"epoch {m['epoch']:>6}  loss {m['loss']:.6f}"
    if m["accuracy"] is not None:
        line += f"  accuracy {m['accuracy']:.3f}"
    if m["val_loss"] is not None:
        line += f"  val_loss {m['val_loss']:.6f}"
    if m["val_accuracy"] is not None:
        line += f"  val_accuracy {m['val_accuracy']:.3f}"
    print(f"{line}  lr {m['lr']:.3g}")
PY

job=$(curl -sS --fail-with-body -H "$auth" -H 'Content-Type: application/json' \
  --data @"$spec" "$url/v1/jobs")
id=$(field id <<<"$job")
echo "job $id $(field status <<<"$job"): $(field parameters <<<"$job") parameters"

shown=0
while true; do
  # Status first, then metrics: once the status is final, every epoch is already recorded.
  job=$(curl -sS --fail-with-body -H "$auth" "$url/v1/jobs/$id")
  metrics=$(curl -sS --fail-with-body -H "$auth" "$url/v1/jobs/$id/metrics?since=$shown")
  python3 -c "$print_epochs" <<<"$metrics"
  shown=$(last_epoch "$shown" <<<"$metrics")
  status=$(field status <<<"$job")
  case $status in
    succeeded | cancelled) echo "job $id $status"; break ;;
    failed) echo "job $id failed: $(field error <<<"$job")"; exit 1 ;;
  esac
  sleep 1
done
