"""The documented prior table is the code's."""

from pathlib import Path

from thalia.mass import TCM
from thalia.mass.tcm_priors import free_entries_markdown, prior_table_markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "tcm_model.md"


def test_prior_table_in_docs_is_current():
    text = DOC.read_text()
    block = text.split("<!-- prior-table:start -->\n")[1].split("<!-- prior-table:end -->")[0]
    space = TCM().space
    assert prior_table_markdown(space) in block
    assert free_entries_markdown(space) in block
