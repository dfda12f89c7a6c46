import json

from controlbreast.summary import headline, write_summary


def test_summary_is_flat_rounded_and_deterministic(tmp_path):
    values = {"images": 480, "auc": {"estimate": 0.87654, "low": float("nan")}, "arm": "real"}
    assert headline(values) == {"images": 480, "auc/estimate": 0.877, "auc/low": None, "arm": "real"}
    path = write_summary(tmp_path / "metrics", "ingest", values)
    first = path.read_bytes()
    assert path == tmp_path / "metrics" / "summary" / "ingest.json"
    assert json.loads(first)["auc/estimate"] == 0.877
    write_summary(tmp_path / "metrics", "ingest", dict(reversed(values.items())))
    assert path.read_bytes() == first
