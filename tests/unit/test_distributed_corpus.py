"""The Ray corpus job's driver-side checks, which run before Ray starts: the exact input files
(globs expanded, .ndjson kept), a destination that holds no earlier run, a model that can do
the job, and one line with exit status 2 for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.distributed.corpus_files import (
    CorpusError,
    check_destination,
    corpus_files,
    discard,
    publish,
    staging_folder,
)
from gateway.distributed.embed_corpus import main
from tools.gateway_server import free_port
from tools.paths import REPO


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n")
    return path


def test_globs_are_expanded_absolute_or_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = touch(tmp_path / "c" / "a.parquet"), touch(tmp_path / "c" / "b.parquet")
    touch(tmp_path / "c" / "notes.txt")
    absolute = corpus_files(str(tmp_path / "c" / "*.parquet"))
    assert (absolute.format, absolute.paths) == ("parquet", [str(a), str(b)])
    monkeypatch.chdir(tmp_path)
    assert corpus_files("c/*.parquet").paths == ["c/a.parquet", "c/b.parquet"]
    with pytest.raises(CorpusError, match="no input files"):
        corpus_files("c/*.jsonl")
    with pytest.raises(CorpusError, match="no such file or folder"):
        corpus_files("missing.parquet")


def test_ndjson_is_read_with_jsonl_and_mixed_folders_are_refused(tmp_path: Path) -> None:
    touch(tmp_path / "js" / "a.jsonl")
    touch(tmp_path / "js" / "b.ndjson")
    found = corpus_files(str(tmp_path / "js"))
    assert found.format == "json" and [Path(p).name for p in found.paths] == ["a.jsonl", "b.ndjson"]
    touch(tmp_path / "js" / "c.parquet")
    with pytest.raises(CorpusError, match=r"found \.jsonl, \.ndjson, \.parquet"):
        corpus_files(str(tmp_path / "js"))


def test_a_destination_with_an_earlier_run_is_refused_unless_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    check_destination(str(out))  # new
    out.mkdir()
    check_destination(str(out))  # empty
    touch(out / "part-0.parquet")
    with pytest.raises(CorpusError, match=r"not empty .* pass --overwrite"):
        check_destination(str(out))
    check_destination(str(out), overwrite=True)
    touch(out / "notes.txt")  # not an earlier run's output: never deleted
    with pytest.raises(CorpusError, match=r"also holds 'notes\.txt'"):
        check_destination(str(out), overwrite=True)


def test_a_run_replaces_the_earlier_output_only_once_it_is_written(tmp_path: Path) -> None:
    """Ray's overwrite mode emptied the folder before the first row: a failed or stopped run
    lost the earlier output. Now a run writes into a staging folder inside the destination."""
    out = tmp_path / "out"
    earlier = [touch(out / "a_000.parquet"), touch(out / "a_001.parquet")]
    failed = staging_folder(str(out))
    touch(failed / "b_000.parquet")
    discard(failed)  # a failed run: the earlier output as it was
    assert sorted(out.iterdir()) == earlier
    killed = staging_folder(str(out))  # a run killed mid-write leaves its folder behind
    touch(killed / "c_000.parquet")
    check_destination(str(out), overwrite=True)  # ...which later runs' checks pass over
    staging = staging_folder(str(out))
    (staging / "d_000.parquet").write_text("new")
    assert publish(staging, str(out)) == [out / "d_000.parquet"]
    assert sorted(p.name for p in out.iterdir()) == [killed.name, "d_000.parquet"]
    assert (out / "d_000.parquet").read_text() == "new"
    new = tmp_path / "new" / "out"  # a destination that does not exist yet
    staging = staging_folder(str(new))
    touch(staging / "e_000.parquet")
    assert publish(staging, str(new)) == [new / "e_000.parquet"]
    assert [p.name for p in new.iterdir()] == ["e_000.parquet"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "all-minilm"], "out: not empty"),  # checked before the model
        (["--model", "nomic-embed-text", "--task", "querry"], "has no task 'querry'"),
        (["--model", "nomic-embed-text"], "try pulling it first"),
        (["--model", "nomic-embed-text", "--dimensions", "999"], "dimensions must be an integer"),
        (["--model", "no-such-model"], "model 'no-such-model' not found"),
        (["--model", "all-minilm", "--text-column", "x", "--overwrite"], "also holds"),
    ],
)
def test_bad_jobs_are_one_line_before_ray(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    import ray

    monkeypatch.setenv("GATEWAY_REGISTRY", str(REPO / "registry.yaml"))
    monkeypatch.setenv("GATEWAY_MODELS_DIR", str(tmp_path / "models"))  # nothing pulled
    source = touch(tmp_path / "corpus.jsonl")
    touch(tmp_path / "out" / "old.parquet")
    if "also holds" in message:
        touch(tmp_path / "out" / "notes.txt")
    elif "out: not empty" not in message:
        (tmp_path / "out" / "old.parquet").unlink()
    monkeypatch.chdir(tmp_path)
    assert main([str(source), "out", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embed_corpus: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not ray.is_initialized(), "the job was refused before Ray started"


def test_an_address_nothing_answers_at_is_one_line_before_ray(
    default_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ray.init retried such an address for minutes, logging each try; now one line at once."""
    import ray

    monkeypatch.setenv("GATEWAY_REGISTRY", str(REPO / "registry.yaml"))
    monkeypatch.setenv("GATEWAY_MODELS_DIR", str(default_model_dir.parent))
    source = tmp_path / "corpus.jsonl"
    source.write_text('{"text": "hello"}\n')
    address = f"127.0.0.1:{free_port()}"
    flags = ["--model", "all-minilm", "--address", address]
    assert main([str(source), str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err == (
        f"embed_corpus: no Ray cluster answers at {address}: Connection refused\n"
    )
    assert not ray.is_initialized()
