import gzip
import json

from bailong.io import read_jsonl, read_texts


def test_read_jsonl_reads_a_folder_of_shards_in_name_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    shards = tmp_path / "train"
    shards.mkdir()
    (shards / "00000.jsonl").write_text(json.dumps({"text": "甲"}, ensure_ascii=False) + "\n")
    (shards / "00001.jsonl.gz").write_bytes(gzip.compress(json.dumps({"text": "乙"}, ensure_ascii=False).encode()))
    (shards / "00002.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(json.dumps({"text": "丙"}, ensure_ascii=False).encode()))
    pq.write_table(pa.table({"text": ["丁"]}), shards / "00003.parquet")
    (shards / "notes.txt").write_text("not a shard")
    assert [r["text"] for r in read_jsonl(shards)] == ["甲", "乙", "丙", "丁"]
    assert read_texts(shards, limit_chars=2) == ["甲", "乙"]
