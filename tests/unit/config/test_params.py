"""keepalived's parameters, conditional lines and sequences (keepalived.conf(5), ADVANCED
CONFIGURATION), expanded as lib/parser.c's read_line() does."""

from __future__ import annotations

import pytest
from config_helpers import MINIMAL_INSTANCE, errors_of, parse

from lvsagent.config import ConfigError, loads, params
from lvsagent.config.params import (
    MAX_EXPANDED_LINE_LENGTH,
    MAX_SUBSTITUTIONS_PER_LINE,
    ExpansionError,
    Parameters,
    decomment,
)


def expand(text: str, config_id: str = "main", file: str = "/etc/keepalived/k.conf") -> list:
    params = Parameters(config_id)
    lines = []
    for raw in text.splitlines():
        lines.extend(line.text for line in params.expand(raw, file) if line.text)
    params.end_file()
    return lines


def test_substitution_happens_at_use_time_and_is_recursive():
    text = """$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}
$ADDRESS_BASE_SUB=0
${ADDRESS_BASE}.100/32
$ADDRESS_BASE_SUB=10
${ADDRESS_BASE}.100/32
"""
    assert expand(text) == ["10.2.0.100/32", "10.2.10.100/32"]


def test_bare_reference_needs_a_following_blank_and_undefined_names_stay():
    text = "$IF=eth0\ninterface $IF\nx $IFX ${UNDEF} $IF,$IF)\n$ONLY\n"
    assert expand(text) == ["interface eth0", "x $IFX ${UNDEF} eth0,eth0)", "$ONLY"]


def test_lines_without_parameters_pass_unchanged():
    assert expand('  notify "/bin/x $1"  # note\n') == ['  notify "/bin/x $1"  # note']


@pytest.mark.parametrize(
    ("config_id", "expected"),
    [
        ("main", ["router_id main_router", "1.2.3.5", "1.2.3.6"]),
        ("backup", ["router_id backup_router", "1.2.3.4", "1.2.3.6"]),
        ("other", ["1.2.3.4", "1.2.3.5", "1.2.3.6"]),
    ],
)
def test_conditional_lines_follow_the_config_id(config_id, expected):
    text = """@main   router_id main_router
@backup router_id backup_router
   @^main    1.2.3.4
@^backup  1.2.3.5
@^backup2 1.2.3.6
@main
"""
    assert expand(text, config_id) == expected


def test_conditional_definitions_and_a_parameter_that_makes_a_conditional():
    text = "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n"
    assert expand(text, "main") == ["priority 240"]
    assert expand(text, "backup") == ["priority 200"]
    text = "$IF_MAIN=@main\n$IF_MAIN priority 240\n"
    assert expand(text, "main") == ["priority 240"]
    assert expand(text, "backup") == []


def test_multiline_definition_expands_where_it_ends_a_line():
    text = r"""$INSTANCE= \
vrrp_instance VI_${NUM} { \
    interface eth0.${NUM}   \
    @high priority 130 \
    @low priority 120 \
    virtual_ipaddress { \
        10.0.${NUM}.254/24 \
    } \
}

$NUM=0
$INSTANCE
$NUM=1
x $INSTANCE
$INSTANCE y
"""
    block = ["interface eth0.{0}", "priority 130", "virtual_ipaddress {"]
    block += ["10.0.{0}.254/24", "}", "}"]
    expected = ["vrrp_instance VI_0 {", *(line.replace("{0}", "0") for line in block)]
    expected += ["x vrrp_instance VI_1 {", *(line.replace("{0}", "1") for line in block)]
    expected += ["$INSTANCE y"]
    assert expand(text, "high") == expected


def test_nested_multiline_definitions():
    text = r"""$RS= \
real_server 192.168.${VS}.${RS} 80 { \
    weight 1 \
}
$VS_BLOCK= \
virtual_server 10.0.${VS}.4 80 { \
    $RS=1 \
    $RS \
    $RS=2 \
    $RS \
}
$VS=7
$VS_BLOCK
"""
    # a single-line `$RS=1` inside the block redefines the name RS: keepalived's own quirk
    assert expand(text) == ["virtual_server 10.0.7.4 80 {", "1", "2", "}"]
    text = text.replace("$RS=1", "$N=1").replace("$RS=2", "$N=2").replace("${RS}", "${N}")
    assert expand(text) == [
        "virtual_server 10.0.7.4 80 {",
        "real_server 192.168.7.1 80 {",
        "weight 1",
        "}",
        "real_server 192.168.7.2 80 {",
        "weight 1",
        "}",
        "}",
    ]


def test_a_blank_line_ends_a_multiline_definition_and_a_comment_does_not():
    text = "$M=a \\\n# note\nb \\\n\nc\n$M\n"
    assert expand(text) == ["c", "a", "b"]


def test_sequences():
    assert expand("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1") == [
        f"ip_address 10.0.{n}.1" for n in range(4)
    ]
    assert expand("~SEQx(S, 0x90, 0x10, 0xc0) fe80::20:${S}:1") == [
        f"fe80::20:{n}:1" for n in ("90", "a0", "b0", "c0")
    ]
    assert expand("~SEQx(S, 144, 16, 192) ${S}") == ["90", "a0", "b0", "c0"]
    assert expand("~SEQ(I, 3) $I") == ["1", "2", "3"]
    assert expand("~SEQ(I, 0) $I") == ["1", "0"]  # keepalived: start 1, step -1
    assert expand("~SEQ(I, -2) $I") == ["-1", "-2"]
    assert expand("~SEQ(I, 5, 3) $I") == ["5", "4", "3"]
    assert expand("~SEQ(I, 010, 0x9) $I") == ["8", "9"]  # strtol base 0
    assert expand("$N=2\n~SEQ(I, 1, $N) $I") == ["1", "2"]
    nested = expand("~SEQx(A, 0x90, 0x10, 0xa0) ~SEQx(B, 0x12, -1, 0x11) fe81::10:${A}:${B}")
    assert nested == ["fe81::10:90:12", "fe81::10:90:11", "fe81::10:a0:12", "fe81::10:a0:11"]


def test_a_sequence_of_a_multiline_definition():
    text = "$BLOCK= \\\nvrrp_instance V${I} { \\\n}\n~SEQ(I, 1, 2) $BLOCK\n"
    assert expand(text) == ["vrrp_instance V1 {", "}", "vrrp_instance V2 {", "}"]


def test_lists():
    assert expand("~LST(IP, 1, 2) ~LST(IP1, 5,6) 192.169.${IP}.${IP1}") == [
        "192.169.1.5",
        "192.169.1.6",
        "192.169.2.5",
        "192.169.2.6",
    ]
    assert expand("~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) 192.${IP2}.${IP}.${IP1}") == [
        "192.168.10.1",
        "192.170.10.1",
        "192.168.20.4",
        "192.170.20.4",
    ]
    assert expand("~LST({A, B}, {1}) x ${A} [${B}]") == ["x 1 []"]


def test_predefined_parameters():
    assert expand('${_INSTANCE} ${_PWD} "${_HASH}${_BANG}"', "n1") == ['n1 /etc/keepalived "#!"']
    low, high = (int(v) for v in expand("${_RANDOM 5 6} ${_RANDOM 7 7}")[0].split())
    assert low in (5, 6) and high == 7
    assert expand("$_INSTANCE=mine\n$_INSTANCE") == ["mine"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("~SEQ(I, 1, 0, 3) x", "Invalid ~SEQ values '~SEQ(I, 1, 0, 3) x'"),
        ("~SEQ(I, 3, 1, 1) x", "Invalid ~SEQ values"),
        ("~SEQ(I) x", "Invalid ~SEQ definition"),
        ("~SEQ(I, 1, 2", "Invalid ~SEQ definition"),
        ("~SEQ I, 1) x", "Invalid ~SEQ specification"),
        ("~SEQ(I, 1.5) x", "Invalid ~SEQ definition"),
        ("~SEQx(I, -1, 3) x", "~SEQx is only valid for positive numbers"),
        ("~LST(A, {1, 2}) x", "~LST specification has too many values"),
        ("~LST(A 1) x", "Invalid ~LST specification"),
    ],
)
def test_invalid_sequences(line, message):
    with pytest.raises(ExpansionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand(line)


def test_errors_inside_expanded_text_name_the_line_that_expanded_it():
    text = """$VI= \\
vrrp_instance VI_${N} { \\
    interface lo \\
    virtual_router_id ${N} \\
    priority 100 \\
}
~SEQ(N, 1, 2) $VI
~SEQ(N, 300, 300) $VI
"""
    assert errors_of(text) == ["8: virtual_router_id: 300 is out of range 1-255"]


def test_expansion_errors_are_reported_at_their_line():
    errors = errors_of("global_defs {\n~SEQ(I, 1, 0, 3) x\n}\n")
    assert errors == ["2: Invalid ~SEQ values '~SEQ(I, 1, 0, 3) x'"]


def test_an_include_must_not_come_from_expansion(tmp_path):
    (tmp_path / "x.conf").write_text("global_defs {\n router_id X\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text("@main include x.conf\n")
    with pytest.raises(ConfigError) as raised:
        loads(main.read_text(), str(main), config_id="main")
    assert [p.line for p in raised.value.errors] == [1]
    assert "include must be written on a line of its own" in raised.value.errors[0].message
    main.write_text("$F=x.conf\ninclude ${F}\n")
    assert loads(main.read_text(), str(main)).global_defs.router_id == "X"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "$A=$A\nx $A\n",
            f"more than {MAX_SUBSTITUTIONS_PER_LINE} parameter substitutions on one line (does a"
            " parameter refer to itself?)",
        ),
        (
            "$A=x$A \nx $A\n",
            f"more than {MAX_SUBSTITUTIONS_PER_LINE} parameter substitutions on one line (does a"
            " parameter refer to itself?)",
        ),
        (
            "$A=${B}${B}\n$B=${C}${C}\n$C=${D}${D}\n$D=${E}${E}\n$E=${F}${F}\n$F=${G}${G}\n"
            "$G=${H}${H}\n$H=${I}${I}\n$I=${J}${J}\n$J=${K}${K}\n$K=${L}${L}\n$L=${M}${M}\n"
            "$M=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nx ${A}\n",
            f"parameter substitution makes the line longer than {MAX_EXPANDED_LINE_LENGTH}",
        ),
        ("~SEQ(I, 0, 1, 9223372036854775807) x\n", "~SEQ of more than 10000 values"),
        (
            "$M= \\\nm \\\n$M\n$M\n",
            "expansion produces more than 10000",
        ),
        (
            "~SEQ(A, 1, 2000) ~SEQ(B, 1, 2000) ~SEQ(C, 1, 2000)\n",
            "expansion produces more than 10000",
        ),
    ],
)
def test_expansion_is_bounded(text, message, monkeypatch):
    monkeypatch.setattr(params, "MAX_EXPANDED_LINES", 10000)
    errors = errors_of(text)
    last_line = len(text.splitlines())
    assert any(error.startswith(f"{last_line}: {message}") for error in errors), errors


def test_cli_commands_take_the_config_id(tmp_path, capsys):
    from lvsagent import cli

    conf = tmp_path / "k.conf"
    conf.write_text("global_defs {\n @main router_id MAIN\n @^main router_id OTHER\n}\n")
    assert cli.main(["dump-config", "--config-id", "main", str(conf)]) == 0
    assert '"router_id": "MAIN"' in capsys.readouterr().out
    assert cli.main(["dump-config", "-i", "backup", str(conf)]) == 0
    assert '"router_id": "OTHER"' in capsys.readouterr().out
    assert cli.main(["check-config", "--no-host-checks", "-i", "main", str(conf)]) == 0
    assert cli.build_parser().parse_args(["run", "-i", "x"]).config_id == "x"


def test_the_default_config_id_is_the_host_name_up_to_its_first_dot(monkeypatch):
    monkeypatch.setattr(params.os, "uname", lambda: type("U", (), {"nodename": "lb1.dc.example"}))
    assert loads("global_defs {\n @lb1 router_id R\n}\n").global_defs.router_id == "R"


def test_the_man_pages_quoted_script_with_parameters():
    text = (
        "$SG_NAME=SG1\n$INST=low\n$USER=nobody\n"
        + MINIMAL_INSTANCE.rstrip()[:-1]
        + "notify_master \"/etc/keepalived/notify_event.sh ' spaces\\\\x20f\\x69le '"
        + ' \'\\"s p a c e \\"\' ${SG_NAME}.$INST master" $USER nogroup\n}\n'
    )
    script = parse(text).vrrp_instances[0].notify_master
    assert script.command == (
        "/etc/keepalived/notify_event.sh ' spaces\\x20file ' '\"s p a c e \"' SG1.low master"
    )
    assert (script.user.user, script.user.group) == ("nobody", "nogroup")


def test_text_after_a_brace_is_read_as_a_line_of_its_own():
    # each value of the sequence repeats the `}`: so keepalived reads it too
    assert expand("virtual_ipaddress { ~SEQ(I, 1, 2) 10.0.0.$I }") == [
        "virtual_ipaddress",
        "{",
        "10.0.0.1 }",
        "10.0.0.2 }",
    ]
    assert expand("global_defs { @main router_id A }") == ["global_defs", "{", "router_id A }"]
    assert expand("global_defs { @other router_id A }") == ["global_defs", "{"]
    assert expand('x "{ @main" { y }') == ['x "{ @main" { y }']
    assert expand("} $X=1\n$X") == ["}", "1"]


def test_a_conditional_line_inside_a_one_line_block():
    text = "global_defs { @main router_id A }\n"
    assert loads(text, config_id="main").global_defs.router_id == "A"
    # the rest of the line is the conditional line, its `}` included
    assert errors_of(text.replace("@main", "@other")) == [
        "1: global_defs: missing '}' to close this block"
    ]


def test_decomment_as_keepalived():
    assert decomment('  a "b # c" # d  ') == 'a "b # c"'
    assert decomment("a \\# b ! c") == "a \\# b"
    assert decomment("$X=a   \\") == "$X=a\\"
    assert decomment("$X=a # note \\") == "$X=a\\"  # keepalived continues after a comment too
    assert decomment("a \\\\") == "a \\\\"  # an escaped backslash does not continue


def test_a_limit_of_the_load_is_reported_once_and_stops_expansion(monkeypatch):
    monkeypatch.setattr(params, "MAX_EXPANDED_BYTES", 1000)
    text = "global_defs {\n$A=router_id " + "y" * 600 + "\n" + "$A\n" * 50 + "}\n"
    assert errors_of(text) == ["4: expansion produces more than 1000 characters"]


def test_random_with_huge_arguments_saturates_instead_of_failing():
    huge = "9" * 5000  # int() refuses more than 4300 digits
    (value,) = expand(f"${{_RANDOM {huge} {huge}}}")
    assert value == str(2**64 - 1)
    with pytest.raises(ExpansionError, match="MIN is greater than MAX"):
        expand("${_RANDOM 5 1}")
