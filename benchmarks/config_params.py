"""What keepalived's parameters, conditional lines and sequences cost the configuration reader.

Prints, for each case, the CPU seconds lvs-agent's lexer takes (expansion included) and the
problems it reports: a plain 8 MB configuration (the baseline: lines without `$`, `@` or `~`
skip expansion), keepalived.conf(5)'s 65024-instance `~SEQ` example, and hostile files that
must end in bounded time with an error at a line (self reference, doubling definitions,
sequences of huge text, lines of references).

Run: `.venv/bin/python benchmarks/config_params.py`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))

from lvsagent.config.lexer import Lexer, Source  # noqa: E402

SCRIPT = 'vrrp_script chk_{0} {{\n  script "/bin/true {0}"\n  interval 2\n  fall 2\n  rise 2\n}}\n'
VI4 = r"""$VI4= \
track_file offset_instance_4.${IF}.${NUM}.${ID} { \
    file "${_PWD}/679/track_files/4.${IF}.${NUM}.${ID}" \
    weight -100 \
} \
vrrp_instance vrrp4.${IF}.${NUM}.${ID} { \
    interface bond${IF}.${NUM} \
    virtual_router_id ${ID} \
    priority 130 \
    virtual_ipaddress { \
        10.${IF}.${NUM}.${ID}/24 \
    } \
    track_file { \
        offset_instance_4.${IF}.${NUM}.${ID} \
    } \
}
~SEQ(IF,0,7) ~SEQ(NUM,0,31) ~SEQ(ID,1,254) $VI4
"""
CASES = {
    "plain 8 MB (100000 vrrp_script blocks)": "".join(SCRIPT.format(i) for i in range(100000)),
    "keepalived.conf(5): 65024 instances by ~SEQ": VI4,
    "self reference, 100000 lines": "$A=$A\n" + "x $A\n" * 100_000,
    "doubling definitions, 100000 lines": "".join(
        f"$D{i}=${{D{i + 1}}}${{D{i + 1}}}\n" for i in range(11)
    )
    + "$D11="
    + "w" * 30
    + "\n"
    + "x ${D0}\n" * 100_000,
    "2000 references a line, 10000 lines": "$A=a\n" + ("$A " * 2000 + "\n") * 10_000,
    "60 KB value used 200000 times": "$A=" + "y" * 60000 + "\n" + "$A\n" * 200_000,
    "~SEQ of 1 MB of text, 100000 times": "~SEQ(i,1,100000) " + "z" * 1_000_000 + "\n",
    "one 16 MB line of undefined $refs": "$A=x\n" + "$B " * 5_000_000 + "\n",
}


def main() -> None:
    for name, text in CASES.items():
        problems = []
        start = time.process_time()
        tokens = Lexer(Source(), problems.append, "bench").tokenize_file("/bench.conf", text)
        seconds = time.process_time() - start
        first = f", first: {problems[0]}" if problems else ""
        print(
            f"{name}: {len(text) / 1e6:.1f} MB in, {len(tokens)} tokens, {seconds:.2f} s CPU, "
            f"{len(problems)} problem(s){first}"
        )


if __name__ == "__main__":
    main()
