"""`/v1/completions` through the stock openai SDK against the stub backend: routed, policed and charged like
chat, answered from the tiers' text-completion endpoint, streaming and not; `n` > 1 kept whole on both paths."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import openai_tier, sdk


@pytest.fixture
def gateway(stub_backend, run_gateway):
    base, behavior = stub_backend
    config = {"tiers": [openai_tier("edge", base, cost={"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}),
                        openai_tier("cloud", base, location="cloud", cost={"output_per_mtok": 5000.0})],
              "policies": {"personal_data": "device_and_edge"}}
    return run_gateway(config), behavior


def test_a_text_completion_is_routed_and_sent_to_the_tiers_completions_endpoint(gateway):
    url, behavior = gateway
    raw = sdk(url).completions.with_raw_response.create(model="auto", prompt="Once upon a time", max_tokens=5,
                                                         temperature=0)
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.choices[0].text == "Hello from the stub."
    assert completion.choices[0].finish_reason == "stop" and completion.usage.completion_tokens == 5
    sent = behavior.received[-1]
    assert sent["prompt"] == "Once upon a time" and "messages" not in sent  # the raw prompt, no chat turn
    assert sent["max_tokens"] == 5 and sent["stream"] is False
    assert raw.headers["x-tierwise-tier"] == "edge" and float(raw.headers["x-tierwise-cost-usd"]) > 0
    assert completion.model_extra["tierwise"]["tier"] == "edge"


def test_a_streamed_text_completion_arrives_as_text_chunks_with_the_cost_last(gateway):
    url, behavior = gateway
    chunks = list(sdk(url).completions.create(model="edge", prompt="Say hello", stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the stub."
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("cmpl-")
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].model_extra["tierwise"]["cost_usd"] > 0
    assert behavior.received[-1]["stream"] is True


def test_echo_is_done_by_the_gateway_on_both_paths(gateway):
    url, behavior = gateway
    client = sdk(url)
    whole = client.completions.create(model="edge", prompt="Q: hi\nA:", echo=True)
    assert whole.choices[0].text == "Q: hi\nA:Hello from the stub."
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="edge", prompt="Q: hi\nA:", echo=True, stream=True) if c.choices)
    assert streamed == whole.choices[0].text
    assert "echo" not in behavior.received[-1]


def test_several_choices_are_kept_whole_streamed_and_not(gateway):
    url, behavior = gateway
    client = sdk(url)
    whole = client.completions.create(model="edge", prompt="Say hello", n=3)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert {c.text for c in whole.choices} == {"Hello from the stub."}
    texts: dict[int, str] = {}
    for chunk in client.completions.create(model="edge", prompt="Say hello", n=2, stream=True):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "Hello from the stub.", 1: "Hello from the stub."}
    assert behavior.received[-1]["n"] == 2


def test_personal_data_in_a_prompt_never_reaches_a_cloud_tier(gateway):
    url, behavior = gateway
    with pytest.raises(openai.PermissionDeniedError):
        sdk(url).completions.create(model="cloud", prompt="Mail me at jane.doe@example.com")
    assert not behavior.received
    reply = sdk(url).completions.with_raw_response.create(model="auto", prompt="Mail me at jane.doe@example.com")
    assert reply.headers["x-tierwise-tier"] == "edge"


@pytest.mark.parametrize(("fields", "param"), [
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": [[1, 2], [3]]}, "prompt"),
    ({"prompt": ["one", "two"]}, "prompt"),
    ({"best_of": 3}, "best_of"),
    ({"suffix": " and then?"}, "suffix"),
    ({"echo": True, "logprobs": 2}, "logprobs"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_what_is_not_served_is_a_400_that_names_the_field(gateway, fields, param):
    url, behavior = gateway
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).completions.create(**{"model": "auto", "prompt": "hi", **fields})
    assert caught.value.body["param"] == param
    assert not behavior.received


def test_an_upstream_failure_fails_over_to_the_next_tier(gateway):
    url, behavior = gateway
    behavior.fail_first = 1  # the edge answers 500 (tiers here have no retries): the cloud serves
    raw = sdk(url).completions.with_raw_response.create(model="auto", prompt="hi")
    assert raw.headers["x-tierwise-tier"] == "cloud" and raw.headers["x-tierwise-failover"] == "edge"
    assert raw.parse().choices[0].text == "Hello from the stub."
    assert [b["prompt"] for b in behavior.received] == ["hi", "hi"]


def test_a_text_stream_that_breaks_ends_with_an_error_event_not_a_short_answer(gateway):
    url, behavior = gateway
    behavior.mode, behavior.after_pieces = "break", 2
    with pytest.raises(openai.APIError, match="before finishing"):
        list(sdk(url).completions.create(model="edge", prompt="Say hello", stream=True))
    behavior.mode = "ok"
    assert sdk(url).completions.create(model="edge", prompt="Say hello").choices[0].text  # the tier serves on


def test_generated_text_completion_bodies_never_500(gateway):
    import json

    import httpx
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.reliability.test_fuzz import json_values, wild_or

    url, behavior = gateway
    behavior.record = False
    prompts = st.text(max_size=80) | st.lists(st.text(max_size=20), max_size=3) | st.lists(st.integers(), max_size=3)
    bodies = st.fixed_dictionaries({
        "model": wild_or(st.sampled_from(["edge", "auto", "nope"]), weight=6), "prompt": wild_or(prompts, weight=6),
    }, optional={
        "stream": wild_or(st.booleans()), "echo": wild_or(st.booleans()), "n": wild_or(st.integers(0, 4)),
        "logprobs": wild_or(st.integers(-1, 6)), "best_of": wild_or(st.integers(0, 3)),
        "suffix": wild_or(st.text(max_size=5)), "max_tokens": wild_or(st.integers(-2, 64)),
        "temperature": wild_or(st.floats(0, 2)), "stop": wild_or(st.text(max_size=3)), "user": json_values,
    })
    served: list[bool] = []
    with httpx.Client(timeout=30) as client:

        @settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=bodies)
        def one(body: dict) -> None:
            response = client.post(f"{url}/v1/completions", content=json.dumps(body).encode(),
                                   headers={"content-type": "application/json"})
            served.append(response.status_code == 200)
            if response.status_code == 200:
                if response.headers["content-type"].startswith("text/event-stream"):
                    assert response.text.endswith("data: [DONE]\n\n") and '{"error"' not in response.text
                else:
                    assert response.json()["choices"][0]["text"]
                return
            assert response.status_code in {400, 403, 404}, (response.status_code, response.text[:300])
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}

        one()
    assert 10 < sum(served) < len(served) - 10  # both answers and refusals were exercised
