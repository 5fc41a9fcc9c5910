"""`nft -j`: JSON in, JSON out, as an asyncio subprocess (the loop keeps running).

libnftables' Python binding is not importable from every Python the agent runs on, and the
`nft` command speaks the same JSON; every command list goes in as one `nft -j -f -` run,
which nft applies as one transaction (all or nothing).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Optional

from ..ipvs import IpvsError

NFT_TIMEOUT = 10.0  # seconds one nft run may take before it is killed


class NftError(IpvsError):
    """nft failed; an IpvsError so the engine handles it as any data plane's failure."""


class NftClient:
    def __init__(self, program: Optional[str] = None):
        found = program or shutil.which("nft")
        if found is None:
            raise NftError(
                "lvs_data_plane nftables needs the nft command (Debian: apt-get install nftables)"
            )
        self.program = found

    async def _nft(self, args: list, stdin: Optional[bytes] = None) -> bytes:
        process = await asyncio.create_subprocess_exec(
            self.program,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), NFT_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise NftError(f"nft {' '.join(args)}: no answer in {NFT_TIMEOUT:g} seconds") from None
        if process.returncode != 0:
            message = err.decode(errors="replace").strip().splitlines()
            raise NftError(f"nft {' '.join(args)}: {' '.join(message) or 'failed'}")
        return out

    async def apply(self, commands: list) -> None:
        """The commands, as one transaction."""
        if commands:
            await self._nft(["-j", "-f", "-"], json.dumps({"nftables": commands}).encode())

    async def list_table(self, family: str, name: str) -> Optional[dict]:
        """The table as nft lists it in JSON, or None when it does not exist."""
        try:
            out = await self._nft(["-j", "list", "table", family, name])
        except NftError as error:
            if "No such file or directory" in str(error):
                return None
            raise
        return json.loads(out)
