from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n"


def test_preview_draws_each_tutor_board_from_a_simulated_class(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["grafana", "preview", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "simulated class:" in result.output
    drawn = sorted(p.name for p in tmp_path.iterdir())
    assert drawn == ["class-overview.png", "intervention-outcomes.png", "learner-drill-down.png"]
    for name in drawn:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, name
