#!/usr/bin/env bash
# Retrain and publish: the one script behind .github/workflows/retrain.yml, and the same run locally.
#
#   dvc pull -> params overlay -> dvc repro -> dvc push -> params/metrics diff to the summary
#   -> the classifier registered as `candidate` (train-classifier does it) -> promote report
#   -> `controlbreast promote --yes` only when RETRAIN_PROMOTE=yes -> optional branch with the lock.
#
# Inputs, all from the environment and all optional:
#   RETRAIN_OVERLAY   params overlay files, space separated (e.g. ci/params-tiny.yaml)
#   RETRAIN_SET       KEY=VALUE overrides, space separated (e.g. "classifier.epochs=20 seed=1")
#   RETRAIN_DATA_REV  git revision whose DVC data pointers (*.dvc) to train on (default: as checked out)
#   RETRAIN_BASE_REV  revision the params and metrics diffs compare with (default: HEAD)
#   RETRAIN_PROMOTE   yes: move `champion` to the new candidate when it beats the champion
#   RETRAIN_BRANCH    commit dvc.lock, params and results there and push that branch to origin
#   RETRAIN_SUMMARY   Markdown report to append to (default: $GITHUB_STEP_SUMMARY, else retrain-summary.md)
#   RETRAIN_PROMOTE_ONLY  a registry version: only `controlbreast promote --yes --version V` (the
#                     workflow's gated promote job), nothing else
#   DVC_REMOTE_URL    the DVC remote to pull from and push to, set as the default in .dvc/config.local
#                     (git-ignored); default: the remote that .dvc/config names
# Credentials come only from the environment (never arguments or files, never printed): the DVC
# remote's (e.g. AWS_ACCESS_KEY_ID, or `dvc remote modify --local`), MLFLOW_TRACKING_URI and
# MLFLOW_TRACKING_TOKEN for a shared tracking server. Without MLFLOW_TRACKING_URI runs and the
# registry go to the local mlruns/mlflow.db.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

summary="${RETRAIN_SUMMARY:-${GITHUB_STEP_SUMMARY:-retrain-summary.md}}"
base="$(git rev-parse --verify "${RETRAIN_BASE_REV:-HEAD}^{commit}")"
report() { printf '%s\n' "$@" >> "$summary"; }

if [[ -n "${RETRAIN_PROMOTE_ONLY:-}" ]]; then
  report "## Promote version $RETRAIN_PROMOTE_ONLY" "" "$(controlbreast promote --yes --version "$RETRAIN_PROMOTE_ONLY")"
  exit 0
fi
if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
  dvc remote add --local --force --default retrain "$DVC_REMOTE_URL"
fi

if [[ -n "${RETRAIN_DATA_REV:-}" ]]; then
  mapfile -t pointers < <(git ls-tree -r --name-only "$RETRAIN_DATA_REV" | grep '\.dvc$' || true)
  if (( ${#pointers[@]} )); then
    git checkout "$RETRAIN_DATA_REV" -- "${pointers[@]}"
  fi
  echo "retrain: data pointers of $RETRAIN_DATA_REV: ${#pointers[@]} file(s)"
fi

dvc pull --allow-missing

overlay_args=()
read -r -a overlay_files <<< "${RETRAIN_OVERLAY:-}"
read -r -a assignments <<< "${RETRAIN_SET:-}"
for assignment in "${assignments[@]}"; do overlay_args+=(--set "$assignment"); done
if (( ${#overlay_files[@]} + ${#overlay_args[@]} )); then
  controlbreast overlay "${overlay_files[@]}" "${overlay_args[@]}"
fi

dvc repro
dvc push

report "## Retrain at $(git rev-parse --short HEAD) (compared with ${base:0:12})" ""
report "### Params diff" "" "$(dvc params diff --md "$base")" ""
report "### Metrics diff" "" "$(dvc metrics diff --md "$base")" ""
if verdict="$(controlbreast promote 2>&1)"; then
  report "### Registry" "" "$verdict"
  candidate="$(sed -n 's/^promote: version \([0-9][0-9]*\) .*/\1/p' <<< "$verdict")"
  if [[ -n "${GITHUB_OUTPUT:-}" && -n "$candidate" ]]; then echo "candidate=$candidate" >> "$GITHUB_OUTPUT"; fi
else
  report "### Registry" "" "no candidate to judge: $verdict"
fi
if [[ "${RETRAIN_PROMOTE:-no}" == "yes" ]]; then
  report "" "$(controlbreast promote --yes)"
fi

if [[ -n "${RETRAIN_BRANCH:-}" ]]; then
  git switch -c "$RETRAIN_BRANCH"
  git add -- dvc.lock params.yaml
  git add -A -- metrics reports/classifier  # the committed results (dvc.yaml: cache: false)
  git ls-files -z -- '*.dvc' | xargs -0 -r git add --
  git ls-files -z -o --exclude-standard -- '*.gitignore' | xargs -0 -r git add --  # DVC's, beside outputs
  if git diff --cached --quiet; then
    report "" "Nothing changed: no branch pushed (the outputs of HEAD are current)."
  else
    git commit -q -m "Retrain: dvc.lock and results (outputs pushed to the DVC remote)"
    git push -q origin "$RETRAIN_BRANCH"
    report "" "Pushed branch \`$RETRAIN_BRANCH\`: \`controlbreast pull <artifact> --rev $RETRAIN_BRANCH\` fetches its models."
  fi
fi
echo "retrain: done; report in $summary"
