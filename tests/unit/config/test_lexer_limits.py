"""What the lexer refuses to read, so that no file can hang or exhaust a (re)load."""

from __future__ import annotations

import contextlib
import gc
import os

import pytest
from config_helpers import MINIMAL_INSTANCE

from lvsagent.config import ConfigError, load
from lvsagent.config import lexer as lexer_module
from lvsagent.config.lexer import MAX_FILE_BYTES, MAX_GLOB_NESTING, Lexer, Source


def errors_loading(main) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(str(main), host_checks=False)
    return [str(problem) for problem in raised.value.errors]


def write_main(tmp_path, text: str):
    main = tmp_path / "keepalived.conf"
    main.write_text(MINIMAL_INSTANCE + text)
    return main


LINE = MINIMAL_INSTANCE.count("\n") + 1  # the line of `text` in write_main


@pytest.mark.parametrize("keyword", ["include", "includer"])
def test_an_included_fifo_is_refused_at_the_including_line_without_blocking(tmp_path, keyword):
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo)  # nobody writes: reading it would block for ever
    main = write_main(tmp_path, f"{keyword} pipe.conf\n")
    assert errors_loading(main) == [
        f"{main}:{LINE}: {keyword}: cannot read {fifo}: not a regular file (a FIFO)"
    ]


def test_a_fifo_matched_by_a_glob_is_refused(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("! fine\n")
    os.mkfifo(tmp_path / "conf.d" / "b.conf")
    main = write_main(tmp_path, "include conf.d/*.conf\n")
    assert errors_loading(main) == [
        f"{main}:{LINE}: include: cannot read {tmp_path}/conf.d/b.conf: not a regular file (a FIFO)"
    ]


def test_a_device_and_a_directory_are_refused(tmp_path):
    main = write_main(tmp_path, "include /dev/zero\ninclude /tmp\n")
    assert errors_loading(main) == [
        f"{main}:{LINE}: include: cannot read /dev/zero: not a regular file (a character device)",
        f"{main}:{LINE + 1}: include: cannot read /tmp: not a regular file (a directory)",
    ]


def test_the_main_file_must_be_a_regular_file(tmp_path):
    fifo = tmp_path / "keepalived.conf"
    os.mkfifo(fifo)
    assert errors_loading(fifo) == [
        f"{fifo}:0: cannot read the configuration file: not a regular file (a FIFO)"
    ]


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    huge = tmp_path / "huge.conf"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    main = write_main(tmp_path, "include huge.conf\n")
    assert errors_loading(main) == [
        f"{main}:{LINE}: include: cannot read {huge}: larger than {MAX_FILE_BYTES >> 20} MiB"
    ]


def test_the_total_size_is_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(lexer_module, "MAX_TOTAL_BYTES", len(MINIMAL_INSTANCE) + 250)
    for name in "abc":
        (tmp_path / f"{name}.conf").write_text("!" * 99 + "\n")
    main = write_main(tmp_path, "include a.conf\ninclude b.conf\ninclude c.conf\n")
    assert errors_loading(main) == [
        f"{main}:{LINE + 2}: include: cannot read {tmp_path}/c.conf: "
        f"configuration files total more than 0 MiB"
    ]


def test_the_number_of_files_is_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(lexer_module, "MAX_FILES", 3)
    (tmp_path / "conf.d").mkdir()
    for index in range(4):
        (tmp_path / "conf.d" / f"{index}.conf").write_text("! fine\n")
    main = write_main(tmp_path, "include conf.d/*.conf\n")
    assert errors_loading(main) == [
        f"{main}:{LINE}: include conf.d/*.conf: matches more than 3 files"
    ]
    main = write_main(tmp_path, 'include "conf.d/{0,1}.conf"\ninclude "conf.d/{2,3}.conf"\n')
    assert errors_loading(main) == [
        f"{main}:{LINE + 1}: include: cannot read {tmp_path}/conf.d/2.conf: "
        "more than 3 files in the configuration"
    ]


def test_a_ten_megabyte_configuration_loads(tmp_path):
    comment = "! " + "x" * 97 + "\n"
    main = write_main(tmp_path, comment * (10 * 1000 * 1000 // len(comment)))
    assert os.path.getsize(main) > 10_000_000
    assert [i.name for i in load(str(main), host_checks=False).vrrp_instances] == ["VI_1"]


def test_a_brace_pattern_that_explodes_is_an_error_at_its_line(tmp_path):
    main = write_main(tmp_path, 'include "' + "{a,b}" * 30 + '"\n')  # 2**30 names, quoted:
    # outside quotes `{` and `}` are block delimiters
    assert errors_loading(main) == [
        f"{main}:{LINE}: include {'{a,b}' * 16}...: expands to more than 1024 alternatives"
    ]


def test_deeply_nested_braces_are_an_error_not_a_recursion_error(tmp_path):
    nested = "{a," * 400 + "z" + "}" * 400
    main = write_main(tmp_path, f'include "{nested}"\ninclude /{"x" * 5000}\n')
    assert errors_loading(main) == [
        f"{main}:{LINE}: include {nested[:80]}...: braces nested more than {MAX_GLOB_NESTING} deep",
        f"{main}:{LINE + 1}: include /{'x' * 79}...: pattern longer than 4096 characters",
    ]


def test_braces_within_the_limits_still_expand(tmp_path):
    for name in ("a", "b1", "b2", "c"):
        (tmp_path / f"{name}.conf").write_text(f"! {name}\n")
    main = write_main(tmp_path, 'include "{a,b{1,2},c}.conf"\n')
    files = load(str(main), host_checks=False).files
    assert [os.path.basename(f) for f in files[1:]] == ["a.conf", "b1.conf", "b2.conf", "c.conf"]


@pytest.mark.parametrize("escape", ["\\\\", "\\1", "\\x4", "\\"])
def test_a_megabyte_of_escapes_is_read_in_one_pass(escape):
    """Each escape used to copy the rest of the line: quadratic, minutes for this line."""
    count = (1 << 20) // len(escape)
    line = 'x "' + escape * count + '"'
    problems = []
    tokens = Lexer(Source(), problems.append).split_words(line, "t.conf", 1)
    assert problems == []
    assert len(tokens[1].text) == (count // 2 if escape == "\\" else count)


def test_a_megabyte_of_quotes_and_backslashes_outside_quotes():
    line = '""' * (1 << 19) + "\\" * (1 << 20)
    tokens = Lexer(Source(), [].append).split_words(line, "t.conf", 1)
    assert [token.text for token in tokens] == ["\\" * (1 << 20)]


def test_a_nul_character_in_an_include_name_is_an_error(tmp_path):
    main = write_main(tmp_path, 'include "a\\0b.conf"\n')
    assert errors_loading(main) == [f"{main}:{LINE}: include: file name contains a NUL character"]


def test_a_parse_leaves_nothing_for_the_cyclic_garbage_collector(tmp_path):
    """The agent freezes what a reload leaves alive; a cycle left behind would leak, and
    collecting the parse's cycles would stall the loop for hundreds of milliseconds."""
    good = write_main(tmp_path, "")
    bad = tmp_path / "bad.conf"
    bad.write_text(MINIMAL_INSTANCE + "vrrp_instance VI_2 {\n  priority banana\n}\n")
    gc.collect()
    gc.disable()
    try:
        load(str(good), host_checks=False)
        with contextlib.suppress(ConfigError):
            load(str(bad), host_checks=False)
        assert gc.collect() == 0
    finally:
        gc.enable()
