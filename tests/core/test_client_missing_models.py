"""A model file the server lacks, read from ComfyUI's /prompt node_errors JSON (no host needed).

The real server's answer is tested in tests/host/test_host_first_hour.py; here the parsing of the
node-error shapes ComfyUI 0.3.64 sends (execution.validate_inputs): a short list of choices, a
list too long to send (``input_config`` None), and value_not_in_list errors of inputs that are not
model files.
"""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from pakati_core.client import PromptRejectedError
from pakati_core.client.errors import MissingModel, missing_models


def test_missing_models_reads_only_model_inputs():
    node_errors = {
        "4": {
            "class_type": "LoraLoader",
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "lora_name: 'x.safetensors' not in (list of length 25)",
                    "extra_info": {"input_name": "lora_name", "input_config": None, "received_value": "x.safetensors"},
                }
            ],
        },
        "6": {
            "class_type": "KSampler",
            "errors": [
                {
                    "type": "value_not_in_list",
                    "extra_info": {"input_name": "sampler_name", "input_config": [["euler"], {}], "received_value": "nope"},
                }
            ],
        },
        "7": {
            "class_type": "CLIPVisionLoader",
            "errors": [
                {
                    "type": "value_not_in_list",
                    "extra_info": {
                        "input_name": "clip_name",
                        "input_config": [["a.safetensors", "b.safetensors"], {}],
                        "received_value": "c",
                    },
                }
            ],
        },
    }
    got = missing_models(node_errors)
    assert got == [
        MissingModel("4", "LoraLoader", "lora_name", "x.safetensors", "loras", None),
        MissingModel("7", "CLIPVisionLoader", "clip_name", "c", "clip_vision", ("a.safetensors", "b.safetensors")),
    ]
    assert "--set 7.clip_name=a.safetensors" in got[1].fix() and "models/clip_vision/" in got[1].fix()


def test_the_rejection_carries_its_missing_models_across_processes():
    err = PromptRejectedError(
        "http://h:1",
        {"message": "Prompt outputs failed validation"},
        {
            "1": {
                "class_type": "CheckpointLoaderSimple",
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "ckpt_name: 'sd.safetensors' not in []",
                        "extra_info": {"input_name": "ckpt_name", "input_config": [[], {}], "received_value": "sd.safetensors"},
                    }
                ],
            }
        },
    )
    assert err.missing_models == [MissingModel("1", "CheckpointLoaderSimple", "ckpt_name", "sd.safetensors", "checkpoints", ())]
    assert "models/checkpoints/" in str(err) and "--set 1.ckpt_name=YOUR_FILE.safetensors" in str(err)
    back = pickle.loads(pickle.dumps(err))  # Ray actors send it back to the driver
    assert str(back) == str(err) and back.missing_models == err.missing_models


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
ERROR = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["value_not_in_list", "required_input_missing"]) | JSON,
        "extra_info": st.fixed_dictionaries(
            {"input_name": st.sampled_from(["ckpt_name", "lora_name", "steps"]) | JSON, "input_config": JSON, "received_value": JSON}
        )
        | JSON,
    }
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=4),
        st.fixed_dictionaries({"class_type": JSON, "errors": st.lists(ERROR | JSON, max_size=3) | JSON}) | JSON,
        max_size=3,
    )
)
def test_any_node_errors_json_gives_a_list_and_never_raises(node_errors):
    found = missing_models(node_errors)
    assert all(m.folder and m.input in ("ckpt_name", "lora_name") for m in found)
    assert all(m.fix().startswith("fix: ") for m in found)
    assert isinstance(str(PromptRejectedError("http://h:1", {"message": "x"}, node_errors)), str)
