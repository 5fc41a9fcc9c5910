"""The keepalived.conf syntax: comments, quotes, braces, includes, line numbers."""

from __future__ import annotations

import os

import pytest
from config_helpers import errors_of, parse
from hypothesis import given
from hypothesis import strategies as st

from lvsagent.config import ConfigError, load
from lvsagent.config.lexer import Lexer, Source, build_tree, expand_braces, lines, statements
from lvsagent.config.parser import Builder

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
MAIN = os.path.join(FIXTURES, "main.conf")
BAD = os.path.join(FIXTURES, "conf.d", "20-bad.conf")


def tree(text: str):
    problems = []
    lexer = Lexer(Source(), problems.append)
    nodes = build_tree(lexer.tokenize_file("t.conf", text), problems.append)
    return nodes, problems


def test_comments_with_hash_and_bang_anywhere_on_a_line():
    config = parse(
        """
        ! a full line comment
        global_defs {   # trailing comment
            router_id R1 ! another
        }
        """
    )
    assert config.global_defs.router_id == "R1"


def test_quotes_group_words_and_keep_comment_characters():
    nodes, problems = tree('script "/bin/check # not a comment" \'a\'"b c"\n')
    assert problems == []
    assert nodes[0].words == ["script", "/bin/check # not a comment", "ab c"]


def test_escapes_inside_quotes():
    nodes = tree('x "a\\tb\\x41\\101\\"q"\n')[0]
    assert nodes[0].words == ["x", 'a\tbAA"q']


def test_unterminated_quote_is_reported_with_its_line():
    problems = tree('\nscript "abc\n')[1]
    assert [(p.line, p.message) for p in problems] == [
        (2, 'unterminated quoted string (missing ")')
    ]


def test_braces_need_no_spaces_and_blocks_can_be_on_one_line():
    nodes, problems = tree("url{ path /x }\nnext 1\n")
    assert problems == []
    assert nodes[0].keyword == "url"
    assert [child.words for child in nodes[0].children] == [["path", "/x"]]
    assert nodes[1].words == ["next", "1"]


def test_opening_brace_on_the_next_line():
    nodes, problems = tree("global_defs\n{\n  router_id A\n}\n")
    assert problems == []
    assert nodes[0].children[0].words == ["router_id", "A"]


def test_unbalanced_braces_are_errors_at_the_right_line():
    assert errors_of("global_defs {\n  router_id A\n") == [
        "1: global_defs: missing '}' to close this block"
    ]
    assert errors_of("global_defs {\n}\n}\n") == ["3: unexpected '}'"]


def test_include_glob_relative_to_including_file_with_lines_of_the_included_file():
    with pytest.raises(ConfigError) as raised:
        load(MAIN, host_checks=False)
    assert [str(p) for p in raised.value.problems if p.severity == "error"] == [
        f"{BAD}:3: virtual_router_id: 300 is out of range 1-255"
    ]


def test_overrides_hide_and_add_files():
    extra = os.path.join(FIXTURES, "conf.d", "30-new.conf")
    config = load(
        MAIN,
        host_checks=False,
        overrides={BAD: None, extra: "vrrp_script chk {\n  script /bin/true\n}\n"},
    )
    assert [i.name for i in config.vrrp_instances] == ["VI_1"]
    assert list(config.vrrp_scripts) == ["chk"]
    assert config.vrrp_scripts["chk"].location.file == extra
    server = config.virtual_servers[0]
    assert server.real_servers[0].address == "10.0.0.1"
    assert server.real_servers[0].location.file == os.path.join(FIXTURES, "real_servers.inc")
    assert server.real_servers[0].checkers[0].connect_timeout == 3.0


def test_override_of_the_main_file_itself():
    config = load(MAIN, host_checks=False, overrides={MAIN: "global_defs {\n router_id X\n}\n"})
    assert config.global_defs.router_id == "X"
    assert config.vrrp_instances == []


def test_missing_main_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load(str(tmp_path / "absent.conf"))
    assert "cannot read" in str(raised.value)


def test_missing_include_is_an_error_and_unmatched_glob_a_warning(tmp_path):
    main = tmp_path / "k.conf"
    main.write_text("include nothing.conf\n")
    with pytest.raises(ConfigError) as raised:
        load(str(main), host_checks=False)
    assert str(raised.value) == (
        f"{main}:1: include: cannot read {tmp_path}/nothing.conf: No such file or directory"
    )
    main.write_text("include none/*.conf\nincluder none/*.conf\n")
    config = load(str(main), host_checks=False)
    assert [str(p) for p in config.warnings] == [
        f"{main}:1: warning: include none/*.conf: no file matches"
    ]


def test_include_cycle_is_reported(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("\ninclude a.conf\n")
    with pytest.raises(ConfigError) as raised:
        load(str(tmp_path / "a.conf"), host_checks=False)
    assert raised.value.problems[0].file == str(tmp_path / "b.conf")
    assert raised.value.problems[0].line == 2
    assert "includes itself" in raised.value.problems[0].message


def test_brace_expansion_in_include_patterns():
    assert expand_braces("/a/{x,y{1,2}}.conf") == ["/a/x.conf", "/a/y1.conf", "/a/y2.conf"]
    assert expand_braces("/a/{x}.conf") == ["/a/{x}.conf"]


@given(st.text(alphabet="ab \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"))
def test_lines_split_where_splitlines_does(text):
    assert list(lines(text)) == text.splitlines()


def test_each_top_level_statement_comes_before_the_next_is_read():
    """The parser reads a statement while the file's next ones are still text: a large
    file's tree is never whole (ten times the model's memory at 10,000 real servers)."""
    read = []
    lexer = Lexer(Source(), [].append)

    def tokens():
        for token in lexer.tokenize_file("t.conf", "a {\n b 1\n}\nc 2\nd\n{\n e\n}\nf\n"):
            read.append(token.text)
            yield token

    seen = []
    for node in statements(tokens(), [].append):
        seen.append((node.keyword, list(read)))
    assert [keyword for keyword, _read in seen] == ["a", "c", "d", "f"]
    assert "e" not in seen[0][1]  # `a` came before `d`'s block was read
    assert "f" not in seen[2][1]  # `d`, its `{` on the next line, before `f`


def test_an_unclosed_block_still_comes_with_its_problem():
    problems = []
    nodes = list(statements(Lexer(Source(), problems.append).tokenize_file("t", "a {\n b\n"),
                            problems.append))  # fmt: skip
    assert [node.keyword for node in nodes] == ["a"]
    assert [p.message for p in problems] == ["a: missing '}' to close this block"]


def test_a_virtual_servers_block_states_are_dropped_once_it_is_read():
    """What was read in each real server's block is needed until its virtual server is
    complete, not until the end of the file."""
    builder = Builder([].append)
    text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n"
    text += "  weight 2\n  TCP_CHECK {\n   connect_timeout 3\n  }\n }\n}\n"
    config = builder.build(statements(Lexer(Source(), [].append).tokenize_file("t", text),
                                      [].append))  # fmt: skip
    real = config.virtual_servers[0].real_servers[0]
    assert real.weight == 2 and real.checkers[0].connect_timeout == 3
    assert set(builder.read.state) == {id(config)}  # the top level only
