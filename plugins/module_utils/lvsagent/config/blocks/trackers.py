"""What VRRP instances track, defined at top level: vrrp_script, track_file, vrrp_track_process."""

from __future__ import annotations

from ..errors import Invalid
from ..lexer import Node
from ..model import Config, TrackFile, TrackProcess, VrrpScript
from ..redact import excerpt
from ..values import INT32_MAX, UINT32_MAX, Handler, Reader, location, whole

SCRIPT_PERIOD_MAX = UINT32_MAX // 1_000_000
COMM_MAX = 15  # bytes of a process name the kernel keeps (/proc/PID/comm)


class TrackerBlocks:
    """vrrp_script, track_file (and its old name vrrp_track_file), vrrp_track_process."""

    def __init__(self, read: Reader):
        self.read = read

    def top_level(self) -> dict[str, Handler]:
        return {
            "vrrp_script": self.vrrp_script,
            "track_file": self.track_file,
            "vrrp_track_file": self.track_file,
            "vrrp_track_process": self.track_process,
        }

    def tables(self) -> dict[str, dict[str, Handler]]:
        return {
            "vrrp_script": self.vrrp_script_table(),
            "track_file": self.track_file_table(),
            "vrrp_track_process": self.track_process_table(),
        }

    def vrrp_script(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        script = VrrpScript(name, location=location(node))
        state = self.read.walk(node, "vrrp_script", script)
        if not script.script:
            if not self.read.tainted(node):  # keepalived drops it; who tracks it is told so
                self.read.warning(node, f"No script set for vrrp_script {name} - removing")
            return
        if "timeout" not in state.explicit:
            script.timeout = script.interval
        self.read.define(node, config.vrrp_scripts, script, "vrrp_script")

    def vrrp_script_table(self) -> dict[str, Handler]:
        return {
            "script": self.read.scalar(
                "script", lambda node: self.read.command(node, self.read.value(node))
            ),
            "interval": self.script_period(
                "interval", "({name}): vrrp script interval '{value}' must be between 1 and 4294"
            ),
            "timeout": self.script_period(
                "timeout", "({name}): vrrp script timeout '{value}' invalid"
            ),
            "weight": self.script_weight,
            "rise": self.read.lenient(
                "rise",
                whole(1, INT32_MAX),
                "({name}): vrrp script rise value '{value}' invalid, defaulting to 1",
                fallback=1,
            ),
            "fall": self.read.lenient(
                "fall",
                whole(1, INT32_MAX),
                "({name}): vrrp script fall value '{value}' invalid, defaulting to 1",
                fallback=1,
            ),
            "user": self.read.scalar("user", self.read.script_user),
            "init_fail": self.read.scalar("init_fail", self.read.bare_flag),
        }

    def script_period(self, attribute: str, invalid: str) -> Handler:
        """vrrp_script interval/timeout: whole seconds; 0 becomes 1, anything else is ignored."""
        read = self.read.lenient(attribute, whole(0, SCRIPT_PERIOD_MAX), invalid + " - ignoring")

        def handle(node: Node, script: VrrpScript) -> None:
            read(node, script)
            if getattr(script, attribute) == 0:
                self.read.warning(
                    node,
                    f"({script.name}): vrrp script {attribute} must be greater than 0, "
                    "setting to 1",
                )
                setattr(script, attribute, 1)

        return handle

    def script_weight(self, node: Node, script: VrrpScript) -> None:
        if not node.args:
            self.read.error(node, "weight: missing value")
            raise Invalid
        script.weight = self.read.integer(node, -253, 253, node.args[0])
        option = node.args[1] if len(node.args) > 1 else None
        script.weight_reverse = option == "reverse"
        if option not in (None, "reverse"):
            self.read.warning(node, f"vrrp_script {script.name} unknown weight option {option}")

    def track_file(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        if node.keyword == "vrrp_track_file":
            self.read.warning(node, "vrrp_track_file is deprecated, use track_file")
        track = TrackFile(name, location=location(node))
        self.read.walk(node, "track_file", track)
        if not track.file and not self.read.tainted(node):
            self.read.error(node, f"track_file {name}: no file given")
        self.read.define(node, config.track_files, track, "track_file")

    def track_file_table(self) -> dict[str, Handler]:
        return {
            "file": self.read.scalar("file", self.read.text),
            "weight": self.read.tracked_weight(-254, 254),
            "init_file": self.init_file,
        }

    def init_file(self, node: Node, track: TrackFile) -> None:
        """`init_file [VALUE] [overwrite]`: write VALUE (default 0) to the file at start."""
        track.init_value = 0
        for word in node.args:
            if word == "overwrite":
                track.init_overwrite = True
            else:
                track.init_value = self.read.integer(node, -254, 254, word)

    def track_process(self, node: Node, config: Config) -> None:
        name = self.read.block_name(node)
        track = TrackProcess(name, location=location(node))
        state = self.read.walk(node, "vrrp_track_process", track)
        if "quorum" not in state.explicit and track.quorum_max is not None:
            track.quorum = min(track.quorum, track.quorum_max)  # quorum_max 0: none may run
        if not track.process and not self.read.tainted(node):
            self.read.error(node, f"vrrp_track_process {name}: no process given")
        by_name = not (track.params or track.param_match or track.full_command)
        if by_name and len(track.process.encode()) > COMM_MAX:
            self.read.warning(
                node,
                f"vrrp_track_process {name}: the kernel keeps {COMM_MAX} bytes of a process "
                f"name, so '{excerpt(track.process)}' never matches; use full_command",
            )
        if track.quorum_max is not None and track.quorum_max < track.quorum:
            self.read.error(node, f"vrrp_track_process {name}: quorum_max is below quorum")
        self.read.define(node, config.track_processes, track, node.keyword)

    def track_process_table(self) -> dict[str, Handler]:
        return {
            "process": self.process,
            "param_match": self.param_match,
            "weight": self.read.tracked_weight(-254, 254),
            "quorum": self.read.ranged("quorum", 0, INT32_MAX),
            "quorum_max": self.read.ranged("quorum_max", 0, INT32_MAX),
            "fork_delay": self.read.timer("fork_delay", 0, 86400),
            "terminate_delay": self.read.timer("terminate_delay", 0, 86400),
            "delay": self.both_delays,
            "full_command": self.read.scalar("full_command", self.read.bare_flag),
        }

    def process(self, node: Node, track: TrackProcess) -> None:
        """`process NAME [PARAM ...]`: parameters mean the command line is matched, exactly
        unless param_match says otherwise."""
        if node.is_block or not node.args:
            self.read.error(node, "process: expected a process name [parameters]")
            raise Invalid
        track.process, track.params = node.args[0], list(node.args[1:])

    def param_match(self, node: Node, track: TrackProcess) -> None:
        track.param_match = self.read.choice(node, ("initial", "partial")) if node.args else "exact"

    def both_delays(self, node: Node, track: TrackProcess) -> None:
        track.fork_delay = track.terminate_delay = self.read.number(node, 0, 86400)
