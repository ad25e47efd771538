"""Test a LiveKit agent as its users meet it (here lkstate's offline demo agent).

Run with plain ``pytest`` where lkstate is installed (with pytest-asyncio and
``asyncio_mode = auto``). For your own agent, set ``lkstate_agent =
my_agent:entrypoint`` in your pytest configuration. See docs/testing.md.
"""

from lkstate.testing import expect


async def test_the_agent_looks_up_the_weather(agent_session):
    session = await agent_session()  # a real server, the agent dispatched, a real client
    await session.send_text("What's the weather in Paris?")
    await expect(session).agent_calls("get_weather", city="Paris")
    await expect(session).agent_says(r"sunny")
    await expect(session).agent_reaches("listening")
