"""doctor checks the Graph permission of each configured caller source (and stays silent when none is)."""

from __future__ import annotations

from bot.doctor import CALLER_SOURCES
from tests.e2e.test_doctor import POOL, Sandbox, doctor, sandbox

__all__ = ["sandbox"]


async def test_configured_sources_are_checked_and_pass(sandbox: Sandbox) -> None:
    settings = sandbox.settings(caller_sources="contacts,directory,pbx")
    await sandbox.subscribe(settings)
    code, output = await doctor(settings)
    assert code == 0, output
    assert f"[OK] {CALLER_SOURCES}" in output
    paths = [request.path for request in sandbox.graph.requests]
    assert f"/v1.0/users/{POOL}/contacts" in paths and any("users/delta" in path for path in paths)


async def test_a_refused_permission_names_the_permission_to_grant(sandbox: Sandbox) -> None:
    settings = sandbox.settings(caller_sources="contacts,directory")
    await sandbox.subscribe(settings)
    sandbox.graph.add_fault("403", path="/contacts")
    sandbox.graph.add_fault("403", path="/users/delta")
    code, output = await doctor(settings)
    assert code == 1
    assert f"[FAIL] {CALLER_SOURCES}" in output
    assert f"{POOL} contacts: Graph refused access (403)" in output and "Contacts.Read" in output
    assert "directory users: Graph refused access (403)" in output and "User.Read.All" in output


async def test_no_graph_source_no_check(sandbox: Sandbox) -> None:
    settings = sandbox.settings()
    await sandbox.subscribe(settings)
    code, output = await doctor(settings)
    assert code == 0 and CALLER_SOURCES not in output
