"""The ``report`` section of ``params.yaml``, beside the report code: what the one-page report shows
and where its run links point."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from controlbreast.sections import Section


class ReportConfig(Section):
    """``report``: the one-page HTML report and its Markdown twin.

    ``examples`` real training images per class are shown with their controls; ``mlflow_ui`` is the
    address the run links point at (``mlflow ui`` serves 127.0.0.1:5000 by default).
    """

    examples: Annotated[int, Field(ge=1, le=8)] = 2
    mlflow_ui: str = "http://127.0.0.1:5000"
