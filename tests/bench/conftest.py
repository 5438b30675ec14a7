"""Multiple-choice fixtures shared by the built-in scorer's and the lm-eval backend's tests."""

import pytest

CSV = (',content.A,content.Q\n'
       '0,B,1. 臺灣最高的山是(A)雪山(B)玉山(C)合歡山(D)阿里山。\n'
       '1,A,2. 臺北101位於(A)信義區(B)中山區(C)大安區(D)士林區。\n'
       '2,C,"3. 請說明原因。（4分）"\n')


@pytest.fixture
def tiny_tmmlu(tmp_path):
    """One subject, 地理: two questions (answers B, A) and an open question that is skipped."""
    folder = tmp_path / "tmmlu" / "subjects" / "地理"
    folder.mkdir(parents=True)
    (folder / "data.csv").write_text(CSV, encoding="utf-8")
    return tmp_path / "tmmlu"
