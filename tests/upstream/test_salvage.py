"""aiohttp drops buffered bytes when a payload errors; sserelay takes them out first."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest

from sserelay.upstream import salvage


async def _broken_reader() -> aiohttp.StreamReader:
    protocol = mock.Mock(_reading_paused=False)
    reader = aiohttp.StreamReader(protocol, limit=2**16, loop=asyncio.get_running_loop())
    reader.feed_data(b"data: last tokens\n\n")
    reader.set_exception(aiohttp.ClientPayloadError("connection broke"))
    return reader


def test_aiohttp_readany_raises_with_bytes_still_buffered() -> None:
    """The behaviour salvage exists for: readany() raises although data is buffered."""

    async def main() -> None:
        reader = await _broken_reader()
        with pytest.raises(aiohttp.ClientPayloadError):
            await reader.readany()

    asyncio.run(main())


def test_buffered_returns_what_arrived_before_the_break() -> None:
    """salvage.buffered() hands over the bytes aiohttp would have dropped."""

    async def main() -> bytes:
        return salvage.buffered(await _broken_reader())

    assert asyncio.run(main()) == b"data: last tokens\n\n"
