"""Who may start and follow streams: with client keys, a key (header) or a ticket for one
stream, never the key in a URL; with none, this machine only (as the gateway)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from sserelay.testing.redis_server import RedisServer
from sserelay.web.tickets import TicketSigner

from .conftest import Relay, create_key
from .endpoints import events_of, prompt, run


def test_a_ticket_is_bound_to_its_stream_and_expires() -> None:
    """A ticket verifies for its own stream until its expiry, and for nothing else."""
    now = [1_000_000.0]
    signer = TicketSigner("secret", ttl=60, clock=lambda: now[0])
    ticket = signer.issue("stream-a")
    assert signer.verify(ticket, "stream-a")
    assert not signer.verify(ticket, "stream-b")
    assert not TicketSigner("other secret", ttl=60, clock=lambda: now[0]).verify(ticket,
                                                                                  "stream-a")
    expiry, _, signature = ticket.partition(".")
    assert not signer.verify(f"{int(expiry) + 600}.{signature}", "stream-a")  # extended
    for junk in ("", ".", "abc", "1.2.3", "9" * 40 + ".x"):
        assert not signer.verify(junk, "stream-a")
    now[0] += 61
    assert not signer.verify(ticket, "stream-a")


def test_a_ticket_is_the_documented_hmac_of_stream_and_expiry() -> None:
    """`<expiry>.<unpadded base64url HMAC-SHA256 of "<stream id>.<expiry>">`, as web/tickets.py
    says: instances of different versions sharing a secret must accept each other's tickets."""
    signer = TicketSigner("s3cret", ttl=60, clock=lambda: 1_000_000.0)
    mac = hmac.new(b"s3cret", b"stream-a.1000060", hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert signer.issue("stream-a") == f"1000060.{signature}"


def test_a_generated_secret_is_shared_by_instances_on_one_redis(
    redis_server: RedisServer,
) -> None:
    """Without SSERELAY_TICKET_SECRET, instances on one Redis agree on one secret (SET NX),
    so a ticket from one is good on another."""
    one, two = TicketSigner(), TicketSigner()
    asyncio.run(one.share_through_redis(redis_server.url))
    asyncio.run(two.share_through_redis(redis_server.url))
    assert two.verify(one.issue("s"), "s")


def test_with_keys_following_needs_the_key_or_a_ticket(
    relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    """Once a key exists: no key is 401 on every stream route; the ticket from POST
    /v1/streams follows (and stops) that stream only; a bad ticket is 401."""
    db = tmp_path / "keys.sqlite3"
    key = create_key(db, "app")
    relay = relay_factory(db=db)
    with relay.client() as anonymous, relay.client(
        headers={"Authorization": f"Bearer {key}"}
    ) as keyed:
        for response in (
            anonymous.get("/completionChat", params={"prompt": "hi"}),
            anonymous.post("/completions/chat", json={"prompt": "hi"}),
            anonymous.post("/v1/streams", json={"messages": [{"role": "user", "content": "x"}]}),
        ):
            assert response.status_code == 401, response.text
        assert run(keyed, "article-get", prompt("tokens=2", "hi")).ending == "done"
        created = keyed.post("/v1/streams", json={"messages": [
            {"role": "user", "content": prompt("tokens=3", "hi")}]}).json()
        other = keyed.post("/v1/streams", json={"messages": [
            {"role": "user", "content": prompt("tokens=3", "hi")}]}).json()
        url, ticket = created["url"], created["ticket"]
        assert key not in url and key not in ticket
        assert anonymous.get(url).status_code == 401
        assert anonymous.get(url, params={"ticket": other["ticket"]}).status_code == 401
        assert anonymous.get(url, params={"ticket": ticket[:-2] + "xx"}).status_code == 401
        followed = anonymous.get(url, params={"ticket": ticket})
        assert followed.status_code == 200
        assert events_of(followed.content)[-1].data == "[DONE]"
        assert anonymous.delete(other["url"], params={"ticket": other["ticket"]}
                                ).status_code in (200, 202)
        relay.keep(followed.text)


def test_a_ticket_from_one_instance_works_on_another_with_a_shared_secret(
    relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    """Instances configured with the same SSERELAY_TICKET_SECRET accept each other's
    tickets (a browser resuming on another instance behind a load balancer)."""
    db = tmp_path / "keys.sqlite3"
    key = create_key(db, "app")
    env = {"SSERELAY_TICKET_SECRET": "a shared secret"}
    one, two = relay_factory(db=db, env=env), relay_factory(db=db, env=env)
    with one.client(headers={"Authorization": f"Bearer {key}"}) as keyed, two.client() as anon:
        created = keyed.post("/v1/streams", json={"messages": [
            {"role": "user", "content": prompt("tokens=3", "hi")}]}).json()
        # The memory log is per instance: the other one has no such stream, but it let the
        # ticket in (404, not 401).
        answer = anon.get(created["url"], params={"ticket": created["ticket"]})
    assert answer.status_code == 404
