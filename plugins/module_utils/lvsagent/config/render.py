"""The model back to keepalived syntax: one `vrrp_instance` block.

`loads(render_instance(x))` gives back `x` (locations aside) for an instance as `load` returns
it, so the vrrp_instance module can build the model, write its text and let the one parser
judge it. Keywords at their default are left out, except `state` and `priority`, which are
always written: keepalived derives each from the other when one is missing.
"""

from __future__ import annotations

from typing import Optional

from .model import (
    DOWN_TIMER_ADVERTS,
    RTPROT_KEEPALIVED,
    Route,
    Rule,
    Script,
    ScriptUser,
    TrackInterface,
    TrackScript,
    VirtualAddress,
    VrrpInstance,
)

INDENT = "    "
# characters that end or split a bare word, or start a comment or a block
SPECIAL = set(" \t\"'#!{}\\")
# a line starting with these means something else to the lexer (conditionals, parameters)
SPECIAL_START = ("@", "$", "~")
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
LINE_BREAKS = "\u2028\u2029"  # str.splitlines() breaks there, no escape exists
LINE_BREAK_ERROR = "a line break (U+2028, U+2029) cannot be written in a configuration word"
NOTIFY_KEYWORDS = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")
GARP_KEYWORDS = (
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
)


def quote(word: str) -> str:
    """One word as the lexer will read it back: bare when it can be, else double-quoted."""
    bare = word and word.isprintable() and not word.startswith(SPECIAL_START)
    if bare and not SPECIAL.intersection(word):
        return word
    escaped = []
    for char in word:
        if char in ESCAPES:
            escaped.append(ESCAPES[char])
        elif not char.isprintable() and ord(char) < 0x100:
            escaped.append(f"\\x{ord(char):02x}")
        elif char in LINE_BREAKS:
            raise ValueError(LINE_BREAK_ERROR)
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def number(value: float) -> str:
    """`1.0` -> `1`, `0.5` -> `0.5`: the shortest text that reads back as the same float."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def statement(*words: object) -> str:
    """One line; a value that cannot be written is named by the line's first word, not shown."""
    quoted: list[str] = []
    for word in words:
        try:
            quoted.append(quote(str(word)))
        except ValueError:
            raise ValueError(": ".join([*quoted[:1], LINE_BREAK_ERROR])) from None
    return " ".join(quoted)


def address_text(vip: VirtualAddress) -> str:
    """`10.0.0.1` for a host address, `10.0.0.1/24` otherwise (keepalived's default is /32)."""
    address = vip.address
    if address.network.prefixlen == address.max_prefixlen:
        return str(address.ip)
    return address.with_prefixlen


def render_virtual_address(vip: VirtualAddress) -> str:
    """A virtual_ipaddress entry: `ADDRESS[/LEN] [brd B] [dev D] [scope S] [label L] ...`."""
    words = [address_text(vip)]
    for keyword, value in (
        ("brd", vip.broadcast),
        ("dev", vip.dev),
        ("scope", vip.scope),
        ("label", vip.label),
        ("peer", vip.peer),
    ):
        if value is not None:
            words += [keyword, value]
    if vip.no_track:
        words.append("no_track")
    if vip.use_vmac:
        words.append("use_vmac")
    return statement(*words)


def render_route(route: Route) -> str:
    """A virtual_routes/static_routes line; nexthops last, as keepalived reads them."""
    words: list[object] = []
    if route.source is not None:
        words += ["src", route.source]
    if route.type != "unicast":
        words.append(route.type)
    words.append(route.destination)
    optional = (
        ("via", route.via),
        ("dev", route.dev),
        ("scope", route.scope or None),
        ("table", None if route.table == 254 else route.table),
        ("metric", route.metric),
        ("protocol", None if route.protocol == RTPROT_KEEPALIVED else route.protocol),
        ("tos", route.tos),
    )
    words += [word for keyword, value in optional if value is not None for word in (keyword, value)]
    flags = (("onlink", route.onlink), (route.mode, route.mode != "prepend"))
    words += [flag for flag, wanted in (*flags, ("no_track", route.no_track)) if wanted]
    for hop in route.nexthops:
        words.append("nexthop")
        words += ["via", hop.via] if hop.via else []
        words += ["dev", hop.dev] if hop.dev else []
        words += ["weight", hop.weight] if hop.weight != 1 else []
        words += ["onlink"] if hop.onlink else []
    return statement(*words)


def render_rule(rule: Rule) -> str:
    """A virtual_rules/static_rules line, its preference always written."""
    words: list[object] = ["preference", rule.priority]
    if rule.family == 6 and rule.source is None and rule.destination is None:
        words.append("inet6")
    if rule.invert:
        words.append("not")
    optional = (
        ("from", rule.source),
        ("to", rule.destination),
        ("table", rule.table),
        ("goto", rule.goto),
        ("tos", rule.tos),
        ("iif", rule.iif),
        ("oif", rule.oif),
        ("suppress_prefixlength", rule.suppress_prefixlength),
        ("protocol", rule.protocol if rule.no_track else None),
    )
    words += [word for keyword, value in optional if value is not None for word in (keyword, value)]
    if rule.action not in ("table", "goto"):
        words.append(rule.action)
    if rule.fwmark is not None:
        mask = "" if rule.fwmask is None else f"/{rule.fwmask}"
        words += ["fwmark", f"{rule.fwmark}{mask}"]
    if rule.no_track:
        words.append("no_track")
    return statement(*words)


def render_track(track: TrackInterface | TrackScript) -> str:
    """`NAME [weight N [reverse]]`; a reverse without a weight cannot be written."""
    if track.weight is None:
        if track.reverse:
            raise ValueError(f"track_script {track.name}: reverse needs a weight")
        return statement(track.name)
    if isinstance(track, TrackInterface) and track.weight == 0 and not track.reverse:
        return statement(track.name)
    words: list[object] = [track.name, "weight", track.weight]
    if track.reverse:
        words.append("reverse")
    return statement(*words)


def script_user_words(user: Optional[ScriptUser]) -> list[str]:
    """`USER [GROUP]` after a script, nothing when it runs as script_user."""
    if user is None:
        return []
    return [user.user] if user.group is None else [user.user, user.group]


def block(keyword: str, entries: list[str], depth: int = 1) -> list[str]:
    pad = INDENT * depth
    return [f"{pad}{keyword} {{", *(f"{pad}{INDENT}{entry}" for entry in entries), f"{pad}}}"]


def render_instance(instance: VrrpInstance) -> str:
    """The `vrrp_instance NAME { ... }` block of one instance, ending with a newline."""
    pad = INDENT
    lines = [f"vrrp_instance {quote(instance.name)} {{"]

    def add(*words: object) -> None:
        lines.append(pad + statement(*words))

    add("state", instance.state)
    if instance.interface is not None:
        add("interface", instance.interface)
    add("virtual_router_id", instance.virtual_router_id)
    add("priority", instance.priority)
    if instance.advert_int != 1.0:
        add("advert_int", number(instance.advert_int))
    if instance.version != 2:
        add("version", instance.version)
    if instance.nopreempt:
        add("nopreempt")
    if instance.preempt_delay:
        add("preempt_delay", number(instance.preempt_delay))
    if instance.auth_type is not None or instance.auth_pass is not None:
        entries = []
        if instance.auth_type is not None:
            entries.append(statement("auth_type", instance.auth_type))
        if instance.auth_pass is not None:
            entries.append(statement("auth_pass", instance.auth_pass))
        lines += block("authentication", entries)
    if instance.unicast_src_ip is not None:
        add("unicast_src_ip", instance.unicast_src_ip)
    if instance.mcast_src_ip is not None:
        add("mcast_src_ip", instance.mcast_src_ip)
    if instance.unicast_peers:
        lines += block("unicast_peer", [statement(peer) for peer in instance.unicast_peers])
    if instance.unicast_ttl is not None:
        add("unicast_ttl", instance.unicast_ttl)
    if instance.check_unicast_src:
        add("check_unicast_src")
    if instance.virtual_ipaddresses:
        vips = [render_virtual_address(vip) for vip in instance.virtual_ipaddresses]
        lines += block("virtual_ipaddress", vips)
    if instance.virtual_ipaddresses_excluded:
        vips = [render_virtual_address(vip) for vip in instance.virtual_ipaddresses_excluded]
        lines += block("virtual_ipaddress_excluded", vips)
    if instance.virtual_routes:
        lines += block("virtual_routes", [render_route(r) for r in instance.virtual_routes])
    if instance.virtual_rules:
        lines += block("virtual_rules", [render_rule(r) for r in instance.virtual_rules])
    if instance.track_interfaces:
        lines += block("track_interface", [render_track(t) for t in instance.track_interfaces])
    if instance.track_scripts:
        lines += block("track_script", [render_track(t) for t in instance.track_scripts])
    if instance.track_files:
        lines += block("track_file", [render_track(t) for t in instance.track_files])
    if instance.track_processes:
        lines += block("track_process", [render_track(t) for t in instance.track_processes])
    if instance.dont_track_primary:
        add("dont_track_primary")
    for keyword in NOTIFY_KEYWORDS:
        script: Optional[Script] = getattr(instance, keyword)
        if script is not None:
            add(keyword, script.command, *script_user_words(script.user))
    for keyword in GARP_KEYWORDS:
        value = getattr(instance, keyword)
        if value is not None:
            add(keyword, value)
    if not instance.checksum_with_pseudo_header:
        add("v3_checksum_as_v2")
    if instance.accept is not None:
        add("accept" if instance.accept else "no_accept")
    if instance.use_vmac:
        add("use_vmac", *([instance.vmac_name] if instance.vmac_name else []))
    if instance.vmac_xmit_base:
        add("vmac_xmit_base")
    if instance.down_timer_adverts != DOWN_TIMER_ADVERTS:
        add("down_timer_adverts", instance.down_timer_adverts)
    if instance.promote_secondaries:
        add("promote_secondaries")
    for keyword in ("lower_prio_no_advert", "higher_prio_send_advert"):
        value = getattr(instance, keyword)
        if value is not None:
            add(keyword, "true" if value else "false")
    lines.append("}")
    return "\n".join(lines) + "\n"
