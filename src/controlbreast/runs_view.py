"""The MLflow UI's view of this project's runs: ``controlbreast ui``.

MLflow 3.17's UI opens an experiment on whatever its GenAI / Model training switch says (GenAI in a
new browser) and shows a runs table with no metric column until someone picks them. Two things of
its URL decide what opens (read from the UI's own code, ``mlflow/server/js``): ``workflowType=
machine_learning`` (the Model training view) and ``viewStateShareKey=<key>``, which loads a view
(``selectedColumns``, the sort, ...) saved as the experiment tag ``mlflow.sharedViewState.<key>``, as
the UI's own "Share" button does. ``share_view`` writes that tag with the headline columns, so the
URL of ``runs_url`` opens the training runs with them on screen in any browser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from controlbreast.tracking import UI_MODEL_TRAINING

VIEW_KEY = "controlbreast-headline"
VIEW_TAG = "mlflow.sharedViewState."  # the UI's prefix of a shared view's experiment tag
HEADLINE_STAGE = "evaluate"  # the run whose metrics are the headline columns


def headline_columns(experiment_id: str) -> list[str]:
    """The metric keys of the experiment's latest finished ``evaluate`` run that are on the test
    split (``test_auc_<arm>`` first, then ``test_diff_...``): the columns someone compares
    across runs; [] before any evaluation."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], f"attributes.run_name = '{HEADLINE_STAGE}' "
                                      "and attributes.status = 'FINISHED'", max_results=1,
                                      order_by=["attributes.start_time DESC"])
    keys = [key for key in (runs[0].data.metrics if runs else {}) if key.startswith("test_")]
    return sorted(keys, key=lambda key: (not key.startswith("test_auc_"), key))


def view_state(columns: Sequence[str]) -> dict:
    """The runs table's state as the UI shares it: the metric columns ``columns`` right after the
    run's name, start and duration (the wide Source, Models and Dataset columns, which would push
    them off screen, are on each run's page), newest run first."""
    return {"selectedColumns": [f"metrics.`{key}`" for key in columns],
            "orderByKey": "attributes.start_time", "orderByAsc": False}


def share_view(experiment_id: str) -> str:
    """Save the headline view (``view_state`` of ``headline_columns``) as the experiment's shared
    view ``VIEW_KEY``, replacing an older one; returns the key."""
    from mlflow import MlflowClient

    state = json.dumps(view_state(headline_columns(experiment_id)))
    MlflowClient().set_experiment_tag(experiment_id, VIEW_TAG + VIEW_KEY, state)
    return VIEW_KEY


def runs_url(ui: str, experiment_id: str, key: str = VIEW_KEY) -> str:
    """The URL of the experiment's training runs with the shared view ``key``, in ``ui``
    (``http://127.0.0.1:5000``); hash routing, as MLflow serves its pages."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{UI_MODEL_TRAINING}&viewStateShareKey={key}"
