#!/usr/bin/env bash
# CI's tiny pipeline run, also runnable locally: ci/params-tiny.yaml over params.yaml, `dvc repro`,
# then `dvc metrics diff --md` against the base (Markdown, to $GITHUB_STEP_SUMMARY or
# ci-summary.md) and `dvc plots diff` rendered into plots-diff/.
# Base: origin/$BASE_REF on a pull request, else $BEFORE (the push's previous head) when it is a
# commit here, else HEAD (this commit's own committed results).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
summary="${GITHUB_STEP_SUMMARY:-ci-summary.md}"

if [[ -n "${BASE_REF:-}" ]]; then
  base="origin/$BASE_REF"
elif [[ -n "${BEFORE:-}" ]] && git cat-file -e "${BEFORE}^{commit}" 2>/dev/null; then
  base="$BEFORE"
else
  base="HEAD"
fi

controlbreast overlay ci/params-tiny.yaml
dvc repro
{
  echo "## Tiny pipeline (ci/params-tiny.yaml) compared with \`$base\`"
  echo
  echo "### Metrics diff"
  echo
  dvc metrics diff --md "$base"
  echo
  echo "Plots: the \`plots-diff\` artifact (\`dvc plots diff $base\`)."
} >> "$summary"
dvc plots diff "$base" --out plots-diff
