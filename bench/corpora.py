"""The two workloads, built deterministically from text that ships with Python (no downloads).

- sentences: 2,000 English sentences (and a few short paragraphs) from the docstrings of a fixed
  list of stdlib modules, the Zen of Python and Python's LICENSE (mean ~30 tokens);
- passages: 300 passages of 240-256 tokens, consecutive sentences of the same pool joined until
  the next one would pass 256 tokens ([CLS] and [SEP] included), so no system truncates them.

Both lists are put in a seeded pseudo-random order, so consecutive requests mix lengths the way
independent clients would, and any prefix is a fair sample of the whole. Token counts are real
tokens of the bert-base-uncased WordPiece tokenizer that both benchmarked models use.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import inspect
import random
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

N_SENTENCES = 2000
N_PASSAGES = 300
PASSAGE_MIN_TOKENS = 240
PASSAGE_MAX_TOKENS = 256
SEED = 20261122

# A fixed list rather than "every module": what is installed must not change the corpus.
_MODULE_NAMES = """
    abc argparse ast asyncio asyncio.base_events asyncio.events asyncio.locks asyncio.streams
    asyncio.tasks base64 bisect bz2 calendar cmd code codecs codeop collections collections.abc
    compileall concurrent.futures concurrent.futures.process configparser contextlib contextvars
    copy copyreg csv dataclasses datetime decimal difflib dis doctest email.headerregistry
    email.message email.parser email.policy email.utils enum filecmp fileinput fnmatch fractions
    ftplib functools getopt gettext glob graphlib gzip hashlib heapq hmac html.parser http.client
    http.cookiejar http.server imaplib importlib importlib.metadata importlib.resources inspect io
    ipaddress json json.decoder linecache locale logging logging.handlers lzma mailbox mimetypes
    modulefinder multiprocessing multiprocessing.managers multiprocessing.pool netrc numbers
    operator optparse os pathlib pdb pickle pkgutil platform plistlib poplib pprint pstats
    py_compile pydoc queue quopri random re reprlib runpy sched secrets selectors shelve shlex
    shutil signal smtplib socket socketserver sqlite3 ssl statistics string subprocess symtable
    sysconfig tabnanny tarfile tempfile textwrap threading timeit tokenize tomllib trace traceback
    types typing unittest unittest.case unittest.mock urllib.parse urllib.request uuid warnings
    wave weakref webbrowser wsgiref.handlers xml.dom.minidom xml.etree.ElementTree xml.sax
    xmlrpc.client zipfile zipimport zoneinfo
"""
MODULES = tuple(_MODULE_NAMES.split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE_HINTS = re.compile(r"[{}\[\]<>=_`|\\]|\(\)|::|>>>|\.\.\.")


@dataclass(frozen=True)
class Workload:
    name: str
    texts: tuple[str, ...]
    tokens: tuple[int, ...]  # real tokens per text, [CLS] and [SEP] included

    def take(self, n: int) -> Workload:
        return Workload(self.name, self.texts[:n], self.tokens[:n])

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    def digest(self) -> str:
        return hashlib.sha1("\n".join(self.texts).encode()).hexdigest()[:12]

    def describe(self) -> dict[str, object]:
        ordered = sorted(self.tokens)
        return {
            "texts": len(self.texts),
            "tokens": self.total_tokens,
            "tokens_min": ordered[0],
            "tokens_p50": ordered[len(ordered) // 2],
            "tokens_max": ordered[-1],
            "tokens_mean": round(self.total_tokens / len(ordered), 1),
            "sha1": self.digest(),
        }


def _docstrings() -> Iterator[str]:
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a stripped-down Python; the corpus hash records the difference
            continue
        yield inspect.getdoc(module) or ""
        for _, member in sorted(vars(module).items()):
            if inspect.isclass(member) or inspect.isfunction(member):
                yield inspect.getdoc(member) or ""
                if inspect.isclass(member):
                    for _, method in sorted(vars(member).items()):
                        if inspect.isfunction(method):
                            yield inspect.getdoc(method) or ""


def _other_texts() -> Iterator[str]:
    _quiet_import_this()
    yield codecs.decode(sys.modules["this"].s, "rot13")  # the Zen of Python is stored in rot13
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    license_path = Path(sys.base_prefix) / "lib" / version / "LICENSE.txt"
    if license_path.is_file():
        yield license_path.read_text(errors="replace")


def _sentences() -> list[str]:
    """Prose sentences in source order, deduplicated; code-like lines are skipped."""
    seen: set[str] = set()
    out: list[str] = []
    with warnings.catch_warnings():
        # Reading some members' __doc__ (typing.io, ...) warns about deprecations.
        warnings.simplefilter("ignore")
        texts = [*_docstrings(), *_other_texts()]
    for text in texts:
        for paragraph in re.split(r"\n\s*\n", text):
            flat = " ".join(paragraph.split())
            for sentence in _SENTENCE_END.split(flat):
                letters = sum(ch.isalpha() or ch == " " for ch in sentence)
                if (
                    25 <= len(sentence) <= 400
                    and sentence[0].isupper()
                    and sentence[-1] in ".!?"
                    and letters >= 0.9 * len(sentence)
                    and not _CODE_HINTS.search(sentence)
                    and sentence not in seen
                ):
                    seen.add(sentence)
                    out.append(sentence)
    return out


def _quiet_import_this() -> None:
    # `import this` prints the Zen of Python; swallow it once so the bench output stays clean.
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401


def _passages(sentences: Sequence[str], count: Callable[[Sequence[str]], list[int]]) -> list[str]:
    """Consecutive sentences joined while the passage stays within PASSAGE_MAX_TOKENS."""
    lengths = count(sentences)
    passages: list[str] = []
    current: list[str] = []
    # Each sentence adds its tokens minus [CLS] and [SEP]; a passage carries those once.
    size = 2
    for sentence, length in zip(sentences, lengths, strict=True):
        inner = length - 2
        if current and size + inner > PASSAGE_MAX_TOKENS:
            if size >= PASSAGE_MIN_TOKENS:
                passages.append(" ".join(current))
            current, size = [], 2
        if inner + 2 <= PASSAGE_MAX_TOKENS:
            current.append(sentence)
            size += inner
    # Joining can merge pieces across sentence boundaries, so keep only passages that really fit.
    real = count(passages)
    return [p for p, n in zip(passages, real, strict=True) if PASSAGE_MIN_TOKENS <= n <= 256]


def build_workloads(tokenizer_json: Path) -> dict[str, Workload]:
    """{"sentences": ..., "passages": ...} in their seeded order, with real token counts."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]

    pool = _sentences()
    rng = random.Random(SEED)
    # Mostly single sentences, some short paragraphs (2-5 neighbours): lengths then spread like
    # a short-sentence corpus (mean ~30 tokens, long tail), which is what padding costs.
    starts = sorted(rng.sample(range(len(pool) - 5), N_SENTENCES))
    spans = rng.choices((1, 2, 3, 5), weights=(70, 15, 10, 5), k=N_SENTENCES)
    sentences = [" ".join(pool[i : i + k]) for i, k in zip(starts, spans, strict=True)]
    # Nothing may be truncated (Infinity cuts at 512, the others at 256): a too-long paragraph
    # falls back to its first sentence.
    sentences = [
        text if n <= PASSAGE_MAX_TOKENS else pool[i]
        for text, n, i in zip(sentences, count(sentences), starts, strict=True)
    ]
    # Passages use the whole pool in source order (neighbouring sentences read as prose);
    # sharing sentences with the other workload does not matter, they are measured apart.
    passages = _passages(pool, count)
    if len(sentences) < N_SENTENCES or len(passages) < N_PASSAGES:
        raise RuntimeError(
            f"the stdlib gave {len(sentences)} sentences and {len(passages)} passages; "
            f"the bench needs {N_SENTENCES} and {N_PASSAGES}"
        )
    passages = rng.sample(passages, N_PASSAGES)
    rng.shuffle(sentences)
    return {
        "sentences": Workload("sentences", tuple(sentences), tuple(count(sentences))),
        "passages": Workload("passages", tuple(passages), tuple(count(passages))),
    }
