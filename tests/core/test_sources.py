"""Layer 1: reading the SMS Spam Collection from every form it comes in, and the real download path."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from hf_finetune.core.data.sources import REGISTRY, load_source
from hf_finetune.core.errors import UserError


def label_counts(source) -> Counter:
    return Counter(source.splits["train"]["label"])


def test_zip_is_read_the_way_pandas_reads_it(sms_zip):
    source = load_source(str(sms_zip))
    assert list(source.splits) == ["train"]
    assert len(source.splits["train"]) == 5572
    assert label_counts(source) == {"ham": 4825, "spam": 747}


def test_tsv_and_csv_copies_give_the_same_rows(sms_zip, tmp_path):
    tsv = tmp_path / "SMSSpamCollection.tsv"
    tsv.write_bytes(zipfile.ZipFile(sms_zip).read("SMSSpamCollection"))
    from_tsv = load_source(str(tsv))
    assert label_counts(from_tsv) == {"ham": 4825, "spam": 747}

    frame = from_tsv.splits["train"].to_pandas()[["text", "label"]]
    csv = tmp_path / "sms.csv"
    frame.to_csv(csv, index=False)
    from_csv = load_source(str(csv))
    assert from_csv.splits["train"]["text"] == from_tsv.splits["train"]["text"]


def test_tsv_with_header_and_other_column_names(tmp_path):
    tsv = tmp_path / "data.tsv"
    tsv.write_text("message\tcategory\nhello there\tham\nWIN NOW\tspam\n", encoding="utf-8")
    source = load_source(str(tsv), columns=("message", "category"))
    assert source.splits["train"].column_names == ["message", "category"]


def test_split_folder_of_jsonl(rt_folder):
    source = load_source(str(rt_folder))
    assert {name: len(split) for name, split in source.splits.items()} == {
        "train": 8530,
        "validation": 1066,
        "test": 1066,
    }


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nothing.zip does not exist"):
        load_source(str(tmp_path / "nothing.zip"))


def test_empty_file(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(UserError, match="empty.tsv is empty"):
        load_source(str(tmp_path / "empty.tsv"))


def test_truncated_zip_is_an_unreadable_archive(sms_zip, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(sms_zip.read_bytes()[:50_000])
    with pytest.raises(UserError, match="not a readable zip archive"):
        load_source(str(broken))


def test_latin1_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("ham\thello\nspam\tcaf\xe9 prize\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.tsv is not UTF-8 \(byte \d+, line 2\)"):
        load_source(str(path))


def test_unknown_hub_dataset_is_one_sentence():
    with pytest.raises(UserError, match="could not load 'nobody/no-such-dataset' from the Hugging Face Hub"):
        load_source("nobody/no-such-dataset")


class _Server:
    """Serve a folder on 127.0.0.1 and count requests, with no mocking of the HTTP client."""

    def __init__(self, folder: Path):
        self.requests = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_verifies_caches_and_reads(sms_zip, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "sms+spam+collection.zip").write_bytes(sms_zip.read_bytes())
    cache = tmp_path / "cache"
    with _Server(served) as server:
        url = server.url("sms+spam+collection.zip")
        source = load_source("sms_spam", url=url, cache_dir=str(cache))
        assert label_counts(source) == {"ham": 4825, "spam": 747}
        assert source.label_names == ["ham", "spam"]
        cached = cache / REGISTRY["sms_spam"].filename
        assert hashlib.sha256(cached.read_bytes()).hexdigest() in REGISTRY["sms_spam"].sha256
        load_source("sms_spam", url=url, cache_dir=str(cache))
        assert server.requests == 1, "the second load must come from the cache"


def test_corrupted_download_is_rejected_by_checksum(sms_zip, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    corrupted = bytearray(sms_zip.read_bytes())
    corrupted[1000] ^= 0xFF
    (served / "sms.zip").write_bytes(bytes(corrupted))
    cache = tmp_path / "cache"
    with _Server(served) as server:
        with pytest.raises(UserError, match="not the known checksum"):
            load_source("sms_spam", url=server.url("sms.zip"), cache_dir=str(cache))
    assert list(cache.iterdir()) == [], "nothing unverified may stay in the cache"


def test_unreachable_url_names_the_way_out(tmp_path):
    with _Server(tmp_path) as server:
        missing = server.url("not-there.zip")
        with pytest.raises(UserError, match=r"could not download sms_spam: .*not-there.zip.*--dataset PATH"):
            load_source("sms_spam", url=missing, cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bom.jsonl", b'\xef\xbb\xbf{"text": "a", "label": "x"}\n', "byte-order mark (BOM)"),
        ("twice.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "text": "c", "label": "y"}\n',
         "line 2: the key 'text' appears twice"),
        ("twice.json", b'[{"text": "a", "label": "x", "label": "y"}]', "gives the key 'label' twice"),
        # Blank lines used to hide the line from Arrow's "Expected object or value".
        ("kinds.jsonl", b'{"text": "a", "label": "x"}\n\n\n{"text": 5, "label": "y"}\n{"text": "c", "label": "x"}\n',
         "line 4: 'text' is a number, not text as in the other records"),
        ("kinds.json", b'[{"text": "a", "label": 1}, {"text": "b", "label": "spam"}, {"text": "c", "label": 0}]',
         "entry 2: 'label' is text, not a number as in the other records"),
    ],
)  # fmt: skip
def test_json_mistakes_name_the_line_or_entry(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError) as error:
        load_source(str(tmp_path / name))
    assert expected in str(error.value) and name in str(error.value)


def test_place_counts_lines_entries_and_rows_from_one(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"two\nlines",x\nb,y\n')
    (tmp_path / "b.json").write_text('[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]')
    (tmp_path / "c.jsonl").write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n')
    assert load_source(str(tmp_path / "a.csv")).place("train", 1).endswith("a.csv, line 4")
    assert load_source(str(tmp_path / "b.json")).place("train", 1).endswith("b.json, entry 2")
    assert load_source(str(tmp_path / "c.jsonl")).place("train", 1).endswith("c.jsonl, line 3")


# --- no network: the first failed lookup is the last ---------------------------------------------

CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there, a connection is refused


@pytest.fixture
def hub_at_closed_port(monkeypatch):
    """The Hub unreachable as without network, in this process: huggingface_hub and datasets online
    (the suite runs with HF_HUB_OFFLINE=1) and both pointed at a port where nothing listens."""
    import datasets
    from huggingface_hub import constants

    from hf_finetune.core.data.download import hub_unreachable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", CLOSED_PORT)
    hub_unreachable.cache_clear()
    yield
    hub_unreachable.cache_clear()


def assert_names_both_ways_out(message: str) -> None:
    assert "without network access" in message
    assert "--dataset FILE_OR_FOLDER" in message and "--model_name_or_path MODEL_FOLDER" in message
    assert "python -m hf_finetune.tiny" in message


def sleeps_recorded(monkeypatch) -> list[float]:
    """Every time.sleep (our retries, huggingface_hub's backoff) is recorded and skipped: a wait is
    counted, not timed, so the verdict does not depend on the machine's load."""
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    return sleeps


def test_unreachable_download_host_ends_at_once_naming_both_ways_out(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    sleeps = sleeps_recorded(monkeypatch)
    with pytest.raises(UserError) as error:
        load_source("sms_spam", url=f"{CLOSED_PORT}/sms.zip", cache_dir=str(cache))
    # Retrying a host that never answered slept 1 s, then 2 s, and said only "--dataset PATH".
    assert sleeps == []
    message = str(error.value)
    assert message.startswith("--dataset: could not download sms_spam: 127.0.0.1 (")
    assert "cannot be reached" in message
    assert_names_both_ways_out(message)
    assert list(cache.iterdir()) == [], "no partial download may stay in the cache"


def test_unreachable_hub_dataset_ends_at_once_naming_both_ways_out(hub_at_closed_port, monkeypatch):
    import datasets

    sleeps = sleeps_recorded(monkeypatch)
    with pytest.raises(UserError) as error:
        load_source("nobody/no-such-dataset")
    # huggingface_hub retries a file it cannot reach with backoff sleeps (about 23 s) before datasets gives up.
    assert sleeps == []
    message = str(error.value)
    assert message.startswith(f"--dataset: could not load 'nobody/no-such-dataset' from the Hugging Face Hub: {CLOSED_PORT} cannot be reached")
    assert "not in the local datasets cache" in message
    assert_names_both_ways_out(message)
    assert datasets.config.HF_HUB_OFFLINE is False, "datasets' offline switch is set for the one call only"


def test_a_hub_that_answers_is_reachable_whatever_it_answers(tmp_path, monkeypatch):
    """Users with a network keep the real loading: any answer, even 404 at the root of a mirror."""
    from huggingface_hub import constants

    from hf_finetune.core.data.download import hub_unreachable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with _Server(tmp_path / "absent") as server:  # every path answers 404
        monkeypatch.setattr(constants, "ENDPOINT", server.url("").rstrip("/"))
        hub_unreachable.cache_clear()
        try:
            assert hub_unreachable() is None
        finally:
            hub_unreachable.cache_clear()
