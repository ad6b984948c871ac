"""Image URL hosts: internationalized names as browsers read them (IDNA 2008, UTS #46
non-transitional), and the allow-list matching them in either form."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.media import FetchPolicy, InvalidImage
from gateway.media.fetch_target import parse_target, resolve
from gateway.media.policy import ForbiddenURL


@pytest.mark.parametrize(
    ("url", "host"),
    [
        # IDNA 2003 (Python's "idna" codec) maps these to other, registrable, names.
        ("http://straße.de/a.png", "xn--strae-oqa.de"),
        ("http://FAß.de/a.png", "xn--fa-hia.de"),
        ("http://ςοφία.gr/a.png", "xn--kxae4blv.gr"),
        ("http://bücher.example./a.png", "xn--bcher-kva.example."),
        ("http://例え。テスト/a.png", "xn--r8jz45g.xn--zckzah"),  # ideographic full stop
        # ASCII hosts are left as they were: lower-cased, underscores allowed.
        ("http://My_Host.Internal:8080/a.png", "my_host.internal"),
        ("http://xn--strae-oqa.de/a.png", "xn--strae-oqa.de"),
        ("http://[::1]/a.png", "::1"),
        ("http://8.8.8.8/a.png", "8.8.8.8"),
    ],
)
def test_hosts_are_encoded_as_browsers_do(url: str, host: str) -> None:
    assert parse_target(url, FetchPolicy()).host == host


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://a\u200db.com/x.png", r"'a\u200db.com'"),  # IDNA 2003 dropped the joiner
        ("http://bü_cher.example/x.png", "'bü_cher.example'"),
        ("http://-bücher.example/x.png", "'-bücher.example'"),
        ("http://a..b.com/x.png", "'a..b.com'"),
    ],
)
def test_hosts_idna_refuses_are_a_clear_400(url: str, named: str) -> None:
    with pytest.raises(InvalidImage) as caught:
        parse_target(url, FetchPolicy())
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(f"image URL host {named} is not a valid name: ")


def test_allow_list_entries_match_in_unicode_or_idna_form() -> None:
    policy = FetchPolicy.with_allow_list(["bücher.example", "xn--strae-oqa.de", "Images.Internal"])
    for url in ["http://BÜCHER.example/a.png", "http://xn--bcher-kva.example/a.png",
                "http://straße.de/a.png", "http://images.internal/a.png"]:  # fmt: skip
        assert policy.host_allowed(parse_target(url, policy).host), url
    assert policy.host_allowed("Bücher.Example")
    # The IDNA 2003 reading of straße.de is another name, and it is not allowed.
    assert not policy.host_allowed(parse_target("http://strasse.de/a.png", policy).host)
    assert not policy.host_allowed("a\u200db.com")


def test_an_invalid_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"allow-listed host 'a\\u200db.com' is not a valid"):
        FetchPolicy.with_allow_list(["a\u200db.com"])


def test_a_refused_urls_log_line_leaves_out_its_query(caplog: pytest.LogCaptureFixture) -> None:
    """A presigned URL carries its signature in the query string: a credential, which the log
    line about a refused address must not keep (the client's 403 may echo its own URL)."""
    url = "http://10.1.2.3/bucket/cat.png?X-Amz-Signature=5ec2e7c0ffee&token=abc#frag"
    with caplog.at_level(logging.INFO, logger="gateway.media.fetch"), pytest.raises(ForbiddenURL):
        asyncio.run(resolve(parse_target(url, FetchPolicy()), FetchPolicy()))
    assert "refused image URL http://10.1.2.3/bucket/cat.png:" in caplog.text
    assert "5ec2e7c0ffee" not in caplog.text and "token=abc" not in caplog.text
