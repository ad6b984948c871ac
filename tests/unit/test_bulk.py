"""gateway.bulk without a model: reading records, chunk files for resuming, the output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gateway.bulk.job import (
    JobPlan,
    batches_of,
    check_image_sizes,
    image_data_url,
    image_data_url_size,
    run_job,
)
from gateway.bulk.output import OutputError, check_output, ids_path, read_output, write_output
from gateway.bulk.parts import JobMismatch, PartStore
from gateway.bulk.records import RecordError, Records, read_records


def test_text_lines_are_numbered_and_blanks_counted(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("first\n\n   \nsecond\r\nthird")
    records = read_records(source)
    assert [(r.id, r.value) for r in records.items] == [("1", "first"), ("4", "second"),
                                                        ("5", "third")]  # fmt: skip
    assert records.blank == 2 and not records.images


def test_jsonl_with_a_column_and_ids(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [{"doc": "a", "body": "alpha"}, {"doc": "b", "body": "beta"}, {"doc": "c", "body": ""}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = read_records(source, column="body", id_column="doc")
    assert [(r.id, r.value) for r in records.items] == [("a", "alpha"), ("b", "beta")]
    assert records.blank == 1
    with pytest.raises(RecordError, match="no column 'text'"):
        read_records(source)


def test_csv_rows_and_errors(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,text\n7,"hello, world"\n8,"two\nlines"\n')
    records = read_records(source, id_column="id")
    assert [(r.id, r.value) for r in records.items] == [("7", "hello, world"), ("8", "two\nlines")]
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("id,text\n1,a\n1,b\n")
    with pytest.raises(RecordError, match="id '1' appears twice"):
        read_records(duplicate, id_column="id")


def test_parquet_column(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"t": ["x", None, "z"], "k": [10, 11, 12]}), source)
    records = read_records(source, column="t", id_column="k")
    assert [(r.id, r.value) for r in records.items] == [("10", "x"), ("12", "z")]
    assert records.blank == 1
    with pytest.raises(RecordError, match="no column 'nope'; columns: t, k"):
        read_records(source, column="nope")


def test_image_folder_and_unknown_types(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.png").write_bytes(b"png")
    (folder / "sub" / "a.JPG").write_bytes(b"jpg")
    (folder / "notes.txt").write_text("not an image")
    records = read_records(folder)
    assert records.images and [r.id for r in records.items] == ["b.png", "sub/a.JPG"]
    with pytest.raises(RecordError, match="no such file or folder"):
        read_records(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no images found"):
        read_records(tmp_path / "empty")
    (tmp_path / "a.docx").write_text("x")
    with pytest.raises(RecordError, match=r"unknown input type '\.docx'"):
        read_records(tmp_path / "a.docx")


def test_parts_keep_whole_chunks_only_and_refuse_another_job(tmp_path: Path) -> None:
    parts = PartStore(tmp_path / "out.parquet")
    parts.open({"model": "m", "chunk_size": 2})
    parts.write(0, ["1", "2"], np.ones((2, 3), dtype=np.float32))
    parts.write(2, ["5"], np.zeros((1, 3), dtype=np.float32))
    # A kill between the two renames leaves an ids file without vectors: not a chunk.
    (parts.folder / "chunk-000001.ids.json").write_text('["3", "4"]')
    (parts.folder / ".chunk-000001.npy.tmp").write_bytes(b"partial")
    assert parts.done() == {0, 2}
    ids, vectors = parts.read(0)
    assert ids == ["1", "2"] and vectors.shape == (2, 3)
    again = PartStore(tmp_path / "out.parquet")
    again.open({"model": "m", "chunk_size": 2})  # the same job resumes
    with pytest.raises(JobMismatch, match="different chunk_size"):
        again.open({"model": "m", "chunk_size": 4})
    again.open({"model": "m", "chunk_size": 4}, restart=True)
    assert again.done() == set()


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_outputs_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    vectors = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    write_output(path, ["a", "b", "c", "d", "e"], vectors)
    ids, back = read_output(path)
    assert ids == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(back, vectors)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if suffix == ".npy":
        assert ids_path(path).is_file()


def test_output_checks(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"must end in \.parquet or \.npy"):
        check_output(tmp_path / "out.csv")
    with pytest.raises(OutputError, match="no such folder"):
        check_output(tmp_path / "missing" / "out.npy")


class CountingEngine:
    """Stands in for a model: vector = [len(text), 1]; records what it was asked."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.fail_after = fail_after

    def embed(self, inputs: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.seen.extend(inputs)
        return np.array([[len(t), 1.0] for t in inputs], dtype=np.float32)

    def close(self) -> None:
        pass


def test_a_failed_run_resumes_with_only_the_missing_chunks(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("".join(f"text number {i}\n" for i in range(10)))
    records: Records = read_records(source)
    output = tmp_path / "out.npy"
    plan = JobPlan(chunk_size=3, batch_size=2, concurrency=1)
    first = CountingEngine(fail_after=6)
    parts = PartStore(output)
    parts.open({"job": 1})
    with pytest.raises(RuntimeError, match="interrupted"):
        run_job(records, first, parts, output, plan)
    assert parts.done() == {0, 1} and not output.exists()

    second = CountingEngine()
    summary = run_job(records, second, parts, output, plan)
    assert second.seen == [f"text number {i}" for i in range(6, 10)]  # only the rest
    assert (summary.total, summary.resumed, summary.embedded) == (10, 6, 4)
    ids, vectors = read_output(output)
    assert ids == [str(i) for i in range(1, 11)]
    assert vectors[:, 0].tolist() == [len(f"text number {i}") for i in range(10)]
    assert not parts.folder.exists()


class RequestRecorder:
    """Records each request's inputs; answers one row per input."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    def embed(self, inputs: list[str]) -> np.ndarray:
        self.requests.append(list(inputs))
        return np.ones((len(inputs), 2), dtype=np.float32)

    def close(self) -> None:
        pass


def test_image_requests_stay_under_a_byte_budget(tmp_path: Path) -> None:
    """Images were batched by count only: 64 photos of a few MB made bodies of hundreds of MB,
    which a server refuses (64 MiB by default; the CLI then said 'Broken pipe')."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = [300, 500, 200, 2000, 100, 100, 100, 900]  # bytes; one is over the budget alone
    for i, size in enumerate(sizes):
        (folder / f"p{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(size - 8))
    records = read_records(folder)
    output = tmp_path / "out.npy"
    plan = JobPlan(chunk_size=100, batch_size=3, concurrency=1, max_request_bytes=1200)
    engine = RequestRecorder()
    parts = PartStore(output)
    parts.open({"job": 1})
    summary = run_job(records, engine, parts, output, plan)
    assert summary.embedded == len(sizes)
    for path in sorted(folder.iterdir()):
        assert image_data_url_size(str(path)) == len(image_data_url(str(path)))
    sent = [[len(url) for url in request] for request in engine.requests]
    assert [len(request) for request in sent] == [2, 1, 1, 3, 1]  # consecutive, in order
    assert all(sum(request) <= 1200 or len(request) == 1 for request in sent), sent
    assert [url for request in engine.requests for url in request] == [
        image_data_url(str(folder / f"p{i}.png")) for i in range(len(sizes))
    ]
    # Texts are batched by count alone, as before.
    assert batches_of(records.items, 3) == [records.items[i : i + 3] for i in (0, 3, 6)]


def test_an_image_over_the_limit_is_refused_by_its_size_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file was read and base64-encoded (4/3 of it again in memory) before the
    engine refused it: a multi-GB file cost its size twice over, for a refusal."""
    folder = tmp_path / "photos"
    folder.mkdir()
    limit = 1 << 20
    (folder / "at-limit.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(limit - 8))
    with (folder / "huge.png").open("wb") as huge:
        huge.truncate(3 << 30)  # 3 GiB, sparse: no disk is used, and nothing may read it
    records = read_records(folder)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image file was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "open", no_reading)
    with pytest.raises(RecordError) as caught:
        check_image_sizes(records, limit)
    # The words the engine and the server refuse an inline image with (gateway/media/refs.py),
    # the record named as a failed batch names it.
    assert (
        str(caught.value) == "record 'huge.png': the image is larger than the 1048576 bytes allowed"
    )
    check_image_sizes(Records(records.items[:1], 0, images=True), limit)  # at the limit: fine
