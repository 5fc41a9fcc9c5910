"""auth_pass values never reach a message, a log line, a reply or a dump; text from a file that
is not keepalived syntax (an include of /etc/shadow, JSON, binary) is not echoed back in full."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap

import pytest
from config_helpers import MINIMAL_INSTANCE, parse
from hypothesis import given
from hypothesis import strategies as st

from lvsagent import agent, cli
from lvsagent.cli import main
from lvsagent.config import ConfigError, load, loads
from lvsagent.config.redact import MASK, excerpt, mask_secrets
from lvsagent.config.render import LINE_BREAKS, render_instance

SECRET = "Zq9kSecretPw"
SECOND = "Wv7xOtherPw"


def instance_with(authentication: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        vrrp_instance VI_1 {{
            interface eth0
            virtual_router_id 51
            authentication {{
        {textwrap.indent(authentication, "        ")}
            }}
            virtual_ipaddress {{
                10.0.0.100
            }}
        {extra}
        }}
        """)


def problems_of(path) -> list[str]:
    """Every problem load() reports for the file, errors or warnings, as printed."""
    try:
        config = load(str(path), host_checks=False)
    except ConfigError as error:
        return [str(problem) for problem in error.problems]
    return [str(problem) for problem in config.warnings]


def assert_hidden(output, *secrets: str) -> None:
    text = output if isinstance(output, str) else "\n".join(output)
    for secret in secrets or (SECRET, SECOND):
        assert secret not in text


LEAKY_CONFIGS = {
    "extra words after the password": instance_with(f"auth_type PASS\nauth_pass {SECRET} extra"),
    "a password typed with spaces": instance_with(f"auth_type PASS\nauth_pass {SECRET} {SECOND}"),
    "authentication on one line": instance_with(f"auth_type PASS auth_pass {SECRET}"),
    "after a brace, with a tab and a comment": instance_with(
        f"auth_type PASS\n}} authentication {{ auth_pass\t{SECRET} {SECOND} # old"
    ),
    "too long for PASS": instance_with(f"auth_type PASS\nauth_pass {SECRET}"),
    "without auth_type": instance_with(f"auth_pass {SECRET}"),
    "another keyword's line": instance_with(
        "auth_type PASS", extra=f"    priority 100 auth_pass {SECRET}"
    ),
    "in a track_interface block": instance_with(
        "auth_type PASS", extra=f"    track_interface {{\n eth1 auth_pass {SECRET}\n}}"
    ),
    "in a unicast_peer block": instance_with(
        "auth_type PASS", extra=f"    unicast_peer {{\n auth_pass {SECRET}\n}}"
    ),
    "in a virtual_ipaddress block": instance_with(
        "auth_type PASS", extra=f"    virtual_ipaddress {{\n 10.0.0.1 auth_pass {SECRET}\n}}"
    ),
    "an error on the same line": instance_with(f"auth_type PASS\nauth_pass {SECRET} {{\n}}"),
    "a sync group": MINIMAL_INSTANCE
    + f"vrrp_sync_group G {{\n group {{\n auth_pass {SECRET}\n}}}}",
    "a virtual_server_group": f"virtual_server_group G {{\n auth_pass {SECRET}\n}}\n",
    "quoted with a comment": instance_with(f"auth_type PASS\nauth_pass '{SECRET} {SECOND}' x !c"),
    "conditional line": instance_with(f"auth_type PASS\n@main auth_pass {SECRET} {SECOND}"),
}


@pytest.mark.parametrize("text", LEAKY_CONFIGS.values(), ids=LEAKY_CONFIGS.keys())
def test_parser_messages_never_show_a_password(tmp_path, text):
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    problems = problems_of(path)
    assert problems, "each of these configurations has something to report"
    assert_hidden(problems)


def test_extra_words_after_the_password_are_reported_without_them(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(instance_with(f"auth_type PASS\nauth_pass {SECRET} {SECOND}"))
    assert f"{path}:7: warning: auth_pass: ignoring extra arguments: {MASK}" in problems_of(path)


def test_the_pass_length_warning_names_the_keyword_not_the_password(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(instance_with(f"auth_type PASS\nauth_pass {SECRET}"))
    (warning,) = problems_of(path)
    assert warning.endswith(
        "(VI_1) auth_pass is longer than 8 characters: only the first 8 are sent"
    )


def test_included_files_and_include_lines_keep_passwords_hidden(tmp_path):
    (tmp_path / "auth.conf").write_text(f"auth_type PASS\nauth_pass {SECRET} {SECOND}\nbogus 1\n")
    main_file = tmp_path / "keepalived.conf"
    main_file.write_text(instance_with(f"include auth.conf auth_pass {SECRET}"))
    problems = problems_of(main_file)
    assert any("auth.conf:3: unknown keyword 'bogus'" in p for p in problems)
    assert any("include: ignoring extra arguments" in p for p in problems)
    assert_hidden(problems)


def test_a_short_password_is_masked_as_a_word_not_inside_other_words(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(instance_with("auth_pass script", extra="  track_scripts {\n chk\n }"))
    problems = problems_of(path)
    assert any("unknown keyword 'track_scripts' in vrrp_instance" in p for p in problems)


def test_list_blocks_name_the_entry_not_the_rest_of_its_line(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(
        MINIMAL_INSTANCE
        + f"vrrp_sync_group G {{\n group {{\n VI_1 {SECRET}\n }}\n}}\n"
        + f"virtual_server_group W {{\n 10.0.0.1 80 {SECRET}\n}}\n"
    )
    problems = "\n".join(problems_of(path))
    assert "group: expected a vrrp_instance name alone on a line, got more after 'VI_1'" in problems
    assert (
        "virtual_server_group: expected 'ADDRESS [PORT]' alone on a line, "
        "got more after '10.0.0.1'" in problems
    )
    assert_hidden(problems)


# -- every command and reply that shows problems ------------------------------------------------

BAD = instance_with(f"auth_type PASS auth_pass {SECRET} {SECOND}", extra="    garp_master_delay")
WARNED = instance_with(f"auth_type PASS\nauth_pass {SECRET} {SECOND}")


@pytest.mark.parametrize("text", [BAD, WARNED], ids=["errors", "warnings"])
@pytest.mark.parametrize(
    "command",
    [
        ["check-config", "--no-host-checks"],
        ["check-config", "--no-host-checks", "--strict"],
        ["dump-config"],
        ["dump-config", "--json"],
    ],
)
def test_check_config_and_dump_config_never_print_a_password(tmp_path, capsys, command, text):
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    main([*command, str(path)])
    captured = capsys.readouterr()
    assert captured.out or captured.err
    assert_hidden(captured.out + captured.err)


def test_dump_config_masks_the_password_in_the_model(tmp_path, capsys):
    path = tmp_path / "keepalived.conf"
    path.write_text(instance_with(f"auth_type PASS\nauth_pass {SECRET[:8]}"))
    assert main(["dump-config", str(path)]) == 0
    (instance,) = json.loads(capsys.readouterr().out)["vrrp_instances"]
    assert instance["auth_pass"] == MASK


def test_agent_start_and_reload_logs_and_reply_never_show_a_password(tmp_path, caplog):
    path = tmp_path / "keepalived.conf"
    path.write_text(BAD)
    args = cli.build_parser().parse_args(
        ["run", "-f", str(path), "--control-socket", str(tmp_path / "c.sock")]
    )

    async def reload() -> dict:
        running = agent.Agent(args, None)
        running._reload_lock = asyncio.Lock()
        return await running.reload()

    with caplog.at_level(logging.DEBUG, logger="lvsagent"):
        assert agent.run(args) == 1
        reply = asyncio.run(reload())
    assert f"{path}:" in caplog.text
    assert reply["error"] == "configuration has errors" and reply["problems"]
    assert_hidden(json.dumps(reply))
    assert_hidden(caplog.text)


# -- a file that is not keepalived syntax ---------------------------------------------------------

SHADOW_HASH = "$6$rOunds9x$Kq2ZAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh/ij.kl"
FOREIGN_FILES = {
    "shadow": f"root:{SHADOW_HASH}:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n",
    "json": json.dumps({"token": SHADOW_HASH, "user": "admin"}, indent=2) + "\n",
    "one json line": json.dumps({"token": SHADOW_HASH}) + "\n",
    "key file": "Kq2ZAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh\n",
    "binary": "\x7fELF\x02\x01\x01\x00Kq2ZAbCdEfGhIjKlMn\x00\x00\x03\x00>\x00\n",
}


@pytest.mark.parametrize("content", FOREIGN_FILES.values(), ids=FOREIGN_FILES.keys())
@pytest.mark.parametrize("where", ["top", "vrrp_instance", "virtual_ipaddress", "unicast_peer"])
def test_an_included_foreign_file_is_not_echoed(tmp_path, content, where):
    (tmp_path / "foreign").write_text(content)
    if where == "top":
        text = MINIMAL_INSTANCE + "include foreign\n"
    elif where == "vrrp_instance":
        text = MINIMAL_INSTANCE.replace("eth0", "eth0\n include foreign")
    else:
        text = MINIMAL_INSTANCE.replace("eth0", f"eth0\n {where} {{\n include foreign\n }}")
    main_file = tmp_path / "keepalived.conf"
    main_file.write_text(text)
    problems = problems_of(main_file)
    assert problems
    for fragment in ("MnOpQrStUvWx", "19000", "rOunds9x", "admin"):
        assert fragment not in "\n".join(problems)


def test_an_unknown_keyword_is_shown_as_a_short_prefix():
    assert excerpt("bogus") == "bogus"
    assert excerpt("virtual_router_id") == "virtual_router_i..."
    assert excerpt(f"root:{SHADOW_HASH}") == "root:..."
    assert excerpt("Kq2ZAbCdEfGhIjKlMnOpQrStUvWxYz0123456789") == "Kq2ZAbCdEfGhIjKl..."
    assert excerpt("\x7fELF") == "..."
    assert excerpt("2001:db8:1234:5678:9abc:def0:1234:5678/128") == (
        "2001:db8:1234:5678:9abc:def0:1234:5678/128"
    ), "a mistyped address is shown whole"
    assert excerpt("10.0.0.300") == "10.0.0.300"


# -- mask_secrets: configuration text for diffs ---------------------------------------------------

MASKED_TEXTS = {
    "auth_pass a\n": f"auth_pass {MASK}\n",
    "  auth_pass   'b c'  \nx\n": f"  auth_pass   {MASK}  \nx\n",
    "\tauth_pass\tsecret\t# note\n": f"\tauth_pass\t{MASK}\t# note\n",
    "authentication { auth_type PASS auth_pass secret }\n": (
        f"authentication {{ auth_type PASS auth_pass {MASK} }}\n"
    ),
    "authentication {auth_pass secret}\n": f"authentication {{auth_pass {MASK}}}\n",
    'auth_pass "a \\" } b" two\n': f"auth_pass {MASK}\n",
    "auth_pass one two ! comment\n": f"auth_pass {MASK} ! comment\n",
    "auth_pass pa#ss word\n": f"auth_pass {MASK}\n",
    "auth_pass pa#ss auth_pass x\n": f"auth_pass {MASK}\n",
    "auth_pass x } vrrp { auth_pass y }\n": f"auth_pass {MASK} }} vrrp {{ auth_pass {MASK} }}\n",
    '"auth_pass" secret\n': f'"auth_pass" {MASK}\n',
    "auth_pass 'secret\n": f"auth_pass {MASK}\n",
    "auth_pass \\\n  secret\nnext\n": f"auth_pass {MASK}\n  {MASK}\nnext\n",
    "# auth_pass secret\n": f"# auth_pass {MASK}\n",
    "priority 1 # was: auth_pass old one\n": f"priority 1 # was: auth_pass {MASK}\n",
    "my_auth_pass secret\nauth_password x\n": "my_auth_pass secret\nauth_password x\n",
    "auth_type PASS\n": "auth_type PASS\n",
    "auth_pass\n": "auth_pass\n",
}


@pytest.mark.parametrize("text,masked", MASKED_TEXTS.items(), ids=range(len(MASKED_TEXTS)))
def test_mask_secrets_masks_every_value_wherever_it_sits(text, masked):
    assert mask_secrets(text) == masked


def test_mask_secrets_keeps_line_endings_and_none():
    assert mask_secrets("a\r\nauth_pass s\r\n") == f"a\r\nauth_pass {MASK}\r\n"
    assert mask_secrets(None) is None


@given(st.text(min_size=1, max_size=30).filter(lambda text: not set(text) & set(LINE_BREAKS)))
def test_a_rendered_password_reads_back_as_the_mask(password):
    (instance,) = parse(MINIMAL_INSTANCE).vrrp_instances
    instance.auth_type, instance.auth_pass = "PASS", password
    masked = mask_secrets(render_instance(instance))
    (read_back,) = loads(masked).vrrp_instances
    assert read_back.auth_pass == MASK
